"""Text-recognition helpers: character lists, crop pre-processing, CTC greedy and per-character heads.

Class lists follow PaddleOCR (PP-OCR rec) so that its models and ours decode with the same code:

* A character file has one character per line (only the line ending is stripped, so a line holding
  one space is the space character). An ONNX model may carry the same list, newline-joined, in its
  metadata under ``character`` (PP-OCR's key).
* ``load_charset`` turns that list into the **class list**: ``classes[i]`` is the text of output
  class ``i``. The CTC blank is inserted as ``""`` at ``blank`` (0, as PP-OCR), and when the model has
  exactly one class more than that, a trailing ``" "`` is appended (PP-OCR's ``use_space_char``).
  PP-OCRv4 rec: 6623 characters in its metadata + blank + space = 6625 classes.
* Per-character-heads models use the same class list: class 0 (``""``) means "no character at this
  position", so shorter texts pad the last heads with it.

Confidence of a reading: by default the mean of the winning probabilities of the characters kept,
as PaddleOCR reports it (0.0 for an empty reading); ``"min"`` (weakest character) and ``"product"``
(probability of the whole string under independent steps) are available for stricter thresholds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

CONFIDENCE_MODES = ("mean", "min", "product")
#: Metadata keys read by ``load_charset`` (PP-OCR) and written by the plate-reader export.
CHARSET_KEY = "character"


def load_charset(
    path: str | Path | None = None,
    metadata: Mapping[str, str] | None = None,
    *,
    key: str = CHARSET_KEY,
    blank: int = 0,
    num_classes: int | None = None,
) -> list[str]:
    """The model's class list from a character file (preferred when given) or its metadata.

    ``num_classes`` (the model's last output dimension) checks the list against the model: equal ->
    used as is; one more -> PP-OCR trailing space added; anything else -> ValueError naming both.
    """
    if path:
        source = str(path)
        try:
            raw = Path(path).read_bytes().decode("utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read character file {path}: {exc}") from exc
    elif metadata and metadata.get(key):
        source, raw = f"model metadata '{key}'", metadata[key]
    else:
        keys = sorted(metadata) if metadata else []
        raise ValueError(f"no character list: no file given and no metadata key '{key}' (model has {keys})")
    chars = [line.rstrip("\r") for line in raw.split("\n")]
    if chars and chars[-1] == "":
        chars.pop()  # the file's final newline
    return charset_classes(chars, source, blank=blank, num_classes=num_classes)


def charset_classes(
    chars: Sequence[str], source: str, *, blank: int = 0, num_classes: int | None = None
) -> list[str]:
    """The class list of a character list (``source`` names where it came from, for errors): the
    blank inserted at ``blank``, PP-OCR's trailing space when the model has one class more."""
    if not chars:
        raise ValueError(f"character list from {source} is empty")
    classes = list(chars)
    classes.insert(blank if blank >= 0 else len(classes) + 1 + blank, "")
    if num_classes is not None:
        if num_classes == len(classes) + 1:
            classes.append(" ")
        elif num_classes != len(classes):
            raise ValueError(
                f"character list from {source} has {len(chars)} characters ({len(classes)} classes with "
                f"the blank) but the model outputs {num_classes} classes"
            )
    return classes


def resize_text_crop(crop: np.ndarray, height: int, width: int) -> np.ndarray:
    """A BGR crop resized to ``height`` keeping its aspect: width ``ceil(height*w/h)`` capped at ``width``."""
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] == 0 or crop.shape[1] == 0:
        raise ValueError(f"a text crop must be a non-empty BGR image HxWx3, got shape {crop.shape}")
    w = min(width, max(1, int(np.ceil(height * crop.shape[1] / crop.shape[0]))))
    return cv2.resize(crop, (w, height), interpolation=cv2.INTER_LINEAR)


def prepare_text_crops(
    crops: Sequence[np.ndarray], height: int, width: int, out: np.ndarray | None = None
) -> np.ndarray:
    """PP-OCR rec pre-processing of BGR uint8 crops into ``out`` [N,3,height,width] float32.

    Each crop goes through ``resize_text_crop`` (bilinear, aspect kept, width capped), stays in BGR
    order, is normalised to ``(x/255 - 0.5) / 0.5`` in [-1, 1] and left-aligned; the columns to its
    right stay 0. ``out`` is reused when it has the right shape (no per-frame allocation).
    """
    shape = (len(crops), 3, height, width)
    if out is None or out.shape != shape or out.dtype != np.float32:
        out = np.empty(shape, np.float32)
    out.fill(0.0)
    for i, crop in enumerate(crops):
        resized = resize_text_crop(crop, height, width)
        w = resized.shape[1]
        np.multiply(resized.transpose(2, 0, 1), 2.0 / 255.0, out=out[i, :, :, :w], casting="unsafe")
        out[i, :, :, :w] -= 1.0
    return out


def ctc_greedy_decode(
    probs: np.ndarray,
    charset: Sequence[str],
    blank: int = 0,
    confidence: str = "mean",
    per_char: bool = False,
) -> list[tuple[str, float]]:
    """Best-path CTC decoding of softmax ``probs`` [N,T,C]: argmax, collapse repeats, drop blanks.

    ``charset`` is the class list of ``load_charset`` (``len == C``). Confidence is computed from
    the winning probability of each kept step (see the module doc), so pass probabilities, not logits.
    ``per_char`` adds a third item per reading: those probabilities, one per character (float32).
    """
    probs = _check_probs(probs, charset, "CTC")
    idx = probs.argmax(axis=2)
    best = np.take_along_axis(probs, idx[..., None], axis=2)[..., 0]
    keep = idx != blank
    keep[:, 1:] &= idx[:, 1:] != idx[:, :-1]
    return _join(idx, best, keep, charset, confidence, per_char)


def heads_decode(
    probs: np.ndarray | Sequence[np.ndarray],
    charset: Sequence[str],
    pad: int = 0,
    confidence: str = "mean",
    formats: Sequence[str] | None = None,
    format_probs: np.ndarray | None = None,
    per_char: bool = False,
) -> list[tuple[str, float]]:
    """Per-character-heads decoding of ``probs`` [N,K,C] (or K arrays [N,C]): argmax per head.

    Class ``pad`` is "no character" and is dropped. With a format/country head, ``formats`` gives
    each format class as a pattern (``L`` letter, ``D`` digit, e.g. ``LLDDDLL``) and ``format_probs``
    [N,M] its softmax: each row's winning format then restricts every head to letters, digits or
    ``pad`` (past the format's length) before the argmax, so a head never reads ``0`` where the
    format has a letter. Confidence covers the non-pad heads only; ``per_char`` as in CTC decoding.
    """
    if not isinstance(probs, np.ndarray):
        probs = np.stack([np.asarray(p) for p in probs], axis=1)
    probs = _check_probs(probs, charset, "heads")
    if formats is not None and format_probs is not None:
        probs = probs * _format_masks(formats, charset, probs.shape[1], pad)[format_probs.argmax(axis=1)]
    idx = probs.argmax(axis=2)
    best = np.take_along_axis(probs, idx[..., None], axis=2)[..., 0]
    return _join(idx, best, idx != pad, charset, confidence, per_char)


def argmax_labels(probs: np.ndarray, labels: Sequence[str]) -> list[tuple[str, float]]:
    """Winning label and its probability per row of ``probs`` [N,M] (e.g. a country/format head)."""
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] != len(labels):
        raise ValueError(
            f"expected probabilities [N,{len(labels)}] for {len(labels)} labels, got {probs.shape}"
        )
    idx = probs.argmax(axis=1)
    return [(labels[i], float(p)) for i, p in zip(idx, probs[np.arange(len(idx)), idx])]


def _check_probs(probs: np.ndarray, charset: Sequence[str], kind: str) -> np.ndarray:
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise ValueError(f"{kind} decoding expects probabilities [N,T,C], got shape {probs.shape}")
    if probs.shape[2] != len(charset):
        raise ValueError(
            f"{kind} decoding: the model outputs {probs.shape[2]} classes but the character list has "
            f"{len(charset)} (blank included)"
        )
    return probs


def _join(
    idx: np.ndarray,
    best: np.ndarray,
    keep: np.ndarray,
    charset: Sequence[str],
    confidence: str,
    per_char: bool = False,
) -> list[tuple[str, float]]:
    if confidence not in CONFIDENCE_MODES:
        raise ValueError(f"confidence must be one of {CONFIDENCE_MODES}, got '{confidence}'")
    count = keep.sum(axis=1)
    if confidence == "mean":
        conf = np.where(keep, best, 0.0).sum(axis=1) / np.maximum(count, 1)
    elif confidence == "min":
        conf = np.where(keep, best, np.inf).min(axis=1)
    else:
        conf = np.exp(np.where(keep, np.log(np.maximum(best, 1e-30)), 0.0).sum(axis=1))
    conf = np.where(count > 0, conf, 0.0)
    table = np.asarray(charset, dtype=object)
    # One join per reading (a handful of plates per frame); the per-step work above is vectorized.
    if per_char:  # the plate consensus weighs each character's vote by its own probability
        chars = best.astype(np.float32)
        return [("".join(table[r[k]]), float(c), p[k]) for r, k, c, p in zip(idx, keep, conf, chars)]  # type: ignore[misc]
    return [("".join(table[row[k]]), float(c)) for row, k, c in zip(idx, keep, conf)]


def _format_masks(formats: Sequence[str], charset: Sequence[str], heads: int, pad: int) -> np.ndarray:
    """[M,K,C] 0/1 masks: which classes each head may output under each format."""
    is_digit = np.array([len(c) == 1 and c.isdigit() for c in charset])
    is_letter = np.array([len(c) == 1 and c.isalpha() for c in charset])
    is_pad = np.arange(len(charset)) == pad
    masks = np.zeros((len(formats), heads, len(charset)), np.float32)
    for m, fmt in enumerate(formats):
        if len(fmt) > heads or set(fmt) - {"L", "D"}:
            raise ValueError(f"format '{fmt}' must be at most {heads} of 'L'/'D'")
        for k in range(heads):
            allowed = is_pad if k >= len(fmt) else (is_letter if fmt[k] == "L" else is_digit)
            masks[m, k] = allowed
    return masks
