"""Character lists, crop pre-processing and the CTC / per-character-heads decoders on hand-built tensors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trt_perception.vision.text import (
    argmax_labels,
    ctc_greedy_decode,
    heads_decode,
    load_charset,
    prepare_text_crops,
)

CHARS = ["A", "B", "1", "2"]
CLASSES = ["", *CHARS]  # blank/pad at 0


def one_hot_steps(indices: list[list[int]], num_classes: int, p: float = 0.9) -> np.ndarray:
    """[N,T,C] probabilities with ``p`` on the given class per step and the rest spread evenly."""
    idx = np.asarray(indices)
    probs = np.full((*idx.shape, num_classes), (1 - p) / (num_classes - 1), np.float32)
    np.put_along_axis(probs, idx[..., None], p, axis=2)
    return probs


# --- load_charset ---------------------------------------------------------------------------------


def test_charset_from_file_keeps_space_lines_and_inserts_blank(tmp_path):
    f = tmp_path / "chars.txt"
    f.write_bytes(b"A\r\nB\n \n1\n")
    assert load_charset(f, None) == ["", "A", "B", " ", "1"]


def test_charset_from_metadata_like_ppocr_with_trailing_space():
    meta = {"character": "a\nb\nc"}
    assert load_charset(None, meta) == ["", "a", "b", "c"]
    # PP-OCR models have one class more than blank + list: the space (use_space_char).
    assert load_charset(None, meta, num_classes=5) == ["", "a", "b", "c", " "]


def test_charset_file_wins_over_metadata(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("X\n")
    assert load_charset(f, {"character": "a\nb"}) == ["", "X"]


def test_charset_blank_last():
    assert load_charset(None, {"character": "a\nb"}, blank=-1) == ["a", "b", ""]


def test_charset_mismatch_with_model_names_both_counts():
    with pytest.raises(ValueError, match=r"3 characters .* outputs 9 classes"):
        load_charset(None, {"character": "a\nb\nc"}, num_classes=9)


def test_charset_missing_everywhere_names_the_key(tmp_path):
    with pytest.raises(ValueError, match="no metadata key 'character'"):
        load_charset(None, {"other": "x"})
    with pytest.raises(ValueError, match="cannot read character file"):
        load_charset(tmp_path / "nope.txt", None)


# --- CTC ------------------------------------------------------------------------------------------


def test_ctc_collapses_repeats_and_drops_blanks():
    # A A _ A B B _ _ 1 1 -> "AAB1": a blank separates a real double letter.
    probs = one_hot_steps([[1, 1, 0, 1, 2, 2, 0, 0, 3, 3]], len(CLASSES))
    assert ctc_greedy_decode(probs, CLASSES)[0][0] == "AAB1"


def test_ctc_batch_and_empty_reading():
    probs = one_hot_steps([[0, 0, 0, 0], [3, 4, 4, 1]], len(CLASSES))
    (t0, c0), (t1, c1) = ctc_greedy_decode(probs, CLASSES)
    assert (t0, c0) == ("", 0.0)
    assert t1 == "12A"
    assert c1 == pytest.approx(0.9)


def test_ctc_confidence_modes():
    probs = one_hot_steps([[1, 0, 2]], len(CLASSES))
    probs[0, 0] = [0.2, 0.5, 0.1, 0.1, 0.1]  # "A" at 0.5, "B" at 0.9
    assert ctc_greedy_decode(probs, CLASSES)[0] == ("AB", pytest.approx(0.7))
    assert ctc_greedy_decode(probs, CLASSES, confidence="min")[0][1] == pytest.approx(0.5)
    assert ctc_greedy_decode(probs, CLASSES, confidence="product")[0][1] == pytest.approx(0.45)
    with pytest.raises(ValueError, match="confidence"):
        ctc_greedy_decode(probs, CLASSES, confidence="max")


def test_ctc_other_blank_index():
    classes = [*CHARS, ""]
    probs = one_hot_steps([[0, 4, 0, 1]], len(classes))
    assert ctc_greedy_decode(probs, classes, blank=4)[0][0] == "AAB"


def test_ctc_rejects_class_count_mismatch_and_bad_rank():
    with pytest.raises(ValueError, match="outputs 7 classes but the character list has 5"):
        ctc_greedy_decode(np.zeros((1, 3, 7), np.float32), CLASSES)
    with pytest.raises(ValueError, match=r"\[N,T,C\]"):
        ctc_greedy_decode(np.zeros((3, 5), np.float32), CLASSES)


# --- per-character heads --------------------------------------------------------------------------


def test_heads_array_and_list_inputs_agree_and_pad_is_dropped():
    probs = one_hot_steps([[1, 3, 4, 0], [2, 2, 0, 0]], len(CLASSES), p=0.8)
    as_list = [probs[:, k] for k in range(probs.shape[1])]
    expected = [("A12", pytest.approx(0.8)), ("BB", pytest.approx(0.8))]
    assert heads_decode(probs, CLASSES) == expected
    assert heads_decode(as_list, CLASSES) == expected


def test_heads_format_head_masks_letters_and_digits():
    # Head 0 slightly prefers the digit "1" but format "LD" says it is a letter: "A" wins.
    probs = np.full((1, 3, 5), 0.05, np.float32)
    probs[0, 0] = [0.0, 0.4, 0.05, 0.5, 0.05]
    probs[0, 1] = [0.0, 0.1, 0.0, 0.1, 0.8]
    probs[0, 2] = [0.3, 0.0, 0.0, 0.7, 0.0]  # beyond the 2-char format: forced to pad
    fmt = np.array([[0.1, 0.9]], np.float32)
    assert heads_decode(probs, CLASSES)[0][0] == "121"
    text, conf = heads_decode(probs, CLASSES, formats=["LLD", "LD"], format_probs=fmt)[0]
    assert text == "A2"
    assert conf == pytest.approx(0.6)
    assert argmax_labels(fmt, ["LLD", "LD"]) == [("LD", pytest.approx(0.9))]


# --- pre-processing -------------------------------------------------------------------------------


def test_prepare_text_crops_ppocr_layout():
    white_wide = np.full((10, 80, 3), 255, np.uint8)  # aspect 8 -> capped at the full width
    black_narrow = np.zeros((32, 40, 3), np.uint8)  # aspect 1.25 -> 40 columns, rest padded with 0
    out = np.full((2, 3, 32, 160), 7.0, np.float32)
    x = prepare_text_crops([white_wide, black_narrow], 32, 160, out=out)
    assert x is out
    assert np.all(x[0] == 1.0)
    assert np.all(x[1, :, :, :40] == -1.0)
    assert np.all(x[1, :, :, 40:] == 0.0)
    bgr = np.zeros((32, 32, 3), np.uint8)
    bgr[..., 0] = 255  # blue stays channel 0: BGR order, as PP-OCR
    assert prepare_text_crops([bgr], 32, 64)[0, 0, 0, 0] == 1.0
    with pytest.raises(ValueError, match="non-empty BGR"):
        prepare_text_crops([np.zeros((0, 5, 3), np.uint8)], 32, 64)


# --- vectorized decoders against a plain reference loop -----------------------------------------


def _ctc_reference(probs: np.ndarray, classes: list[str], blank: int) -> list[tuple[str, float]]:
    out = []
    for row in probs:
        text, kept, prev = "", [], -1
        for step in row:
            k = int(step.argmax())
            if k not in (blank, prev):
                text += classes[k]
                kept.append(float(step[k]))
            prev = k
        out.append((text, float(np.mean(kept)) if kept else 0.0))
    return out


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 4), st.integers(1, 12), st.just(5)),
        elements=st.floats(0, 1, width=32),
    ),
    st.sampled_from([0, 4]),
)
def test_ctc_matches_reference_loop(probs, blank):
    classes = ["A", "B", "1", "2", "C"]
    classes[blank] = ""
    got = ctc_greedy_decode(probs, classes, blank=blank)
    want = _ctc_reference(probs, classes, blank)
    assert [t for t, _ in got] == [t for t, _ in want]
    np.testing.assert_allclose([c for _, c in got], [c for _, c in want], rtol=1e-5)
