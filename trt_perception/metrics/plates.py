"""Licence-plate reading accuracy: exact match (the thesis' "LP ACC": one wrong character makes the
whole reading wrong) and character accuracy from the edit distance, plus the box matching that turns
an end-to-end run (detector + reader) into reading pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1).

    Plates are ~10 characters, so the O(len(a)*len(b)) row update costs microseconds; the row is a
    numpy vector so only the insertion chain needs a Python loop.
    """
    if a == b:
        return 0
    if not a or not b:
        return max(len(a), len(b))
    bb = np.array([ord(c) for c in b], dtype=np.int64)
    cols = np.arange(len(b) + 1, dtype=np.int64)
    prev = cols.copy()
    for i, ch in enumerate(a, start=1):
        sub = prev[:-1] + (bb != ord(ch))
        row = np.empty_like(prev)
        row[0] = i
        row[1:] = np.minimum(sub, prev[1:] + 1)
        # insertions: row[j] = min_k<=j (row[k] + j - k), a running minimum of row - j
        prev = np.minimum.accumulate(row - cols) + cols
    return int(prev[-1])


@dataclass(frozen=True)
class PlateScores:
    """``exact_match`` = correct readings / plates; ``char_accuracy`` = 1 - edits / characters (>= 0);
    ``cer`` = edits / characters (may exceed 1); a missed plate reads as the empty string."""

    count: int
    exact_match: float
    char_accuracy: float
    cer: float
    missed: int

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def score_plates(predictions: Sequence[str | None], truths: Sequence[str]) -> PlateScores:
    """Score readings against ground-truth texts (same order; ``None`` = nothing read)."""
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} predictions for {len(truths)} ground-truth plates")
    if not truths:
        return PlateScores(0, float("nan"), float("nan"), float("nan"), 0)
    preds = ["" if p is None else p for p in predictions]
    exact = sum(p == t for p, t in zip(preds, truths))
    edits = sum(edit_distance(p, t) for p, t in zip(preds, truths))
    chars = max(1, sum(len(t) for t in truths))
    cer = edits / chars
    return PlateScores(
        count=len(truths),
        exact_match=exact / len(truths),
        char_accuracy=max(0.0, 1.0 - cer),
        cer=cer,
        missed=sum(p is None for p in predictions),
    )


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix [len(a), len(b)] of xyxy boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_readings(
    gt_boxes: np.ndarray,
    pred_boxes: np.ndarray,
    pred_texts: Sequence[str],
    iou_threshold: float = 0.5,
) -> list[str | None]:
    """For each ground-truth plate, the text of the best-overlapping reading (greedy by IoU, each
    reading used once), or ``None`` when no reading overlaps it by ``iou_threshold``."""
    out: list[str | None] = [None] * len(gt_boxes)
    if len(gt_boxes) == 0 or len(pred_boxes) == 0:
        return out
    iou = box_iou(gt_boxes, pred_boxes)
    order = np.dstack(np.unravel_index(np.argsort(-iou, axis=None), iou.shape))[0]
    used_gt: set[int] = set()
    used_pred: set[int] = set()
    for g, p in order:
        if iou[g, p] < iou_threshold:
            break
        if g in used_gt or p in used_pred:
            continue
        out[g] = pred_texts[p]
        used_gt.add(int(g))
        used_pred.add(int(p))
    return out
