"""Plate reading metrics: exact match (one wrong character = wrong plate), character accuracy from
the edit distance, and the box matching of an end-to-end run."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trt_perception.metrics.plates import box_iou, edit_distance, match_readings, score_plates


def reference_levenshtein(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[:], i
        for j, cb in enumerate(b, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ca != cb))
    return row[-1]


@given(st.text("AB12-", max_size=9), st.text("AB12-", max_size=9))
def test_edit_distance_is_levenshtein(a: str, b: str) -> None:
    assert edit_distance(a, b) == reference_levenshtein(a, b) == edit_distance(b, a)


def test_known_distances() -> None:
    assert edit_distance("AB123CD", "AB123CD") == 0
    assert edit_distance("AB123CD", "A8123CD") == 1  # substitution
    assert edit_distance("AB123CD", "AB23CD") == 1  # deletion
    assert edit_distance("", "ABC") == 3


def test_scores() -> None:
    s = score_plates(["AB123CD", "A8123CD", None, "XY9"], ["AB123CD", "AB123CD", "KK111", "XY99"])
    assert s.count == 4 and s.missed == 1
    assert s.exact_match == pytest.approx(1 / 4)
    edits, chars = 0 + 1 + 5 + 1, 7 + 7 + 5 + 4
    assert s.cer == pytest.approx(edits / chars)
    assert s.char_accuracy == pytest.approx(1 - edits / chars)
    assert score_plates(["ZZZZZZZZZZ"], ["A"]).char_accuracy == 0.0  # floored, CER above 1
    with pytest.raises(ValueError, match="2 predictions for 1"):
        score_plates(["A", "B"], ["A"])


def test_match_readings_greedy_by_iou() -> None:
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [50, 50, 60, 60]], float)
    pred = np.array([[21, 0, 31, 10], [0, 1, 10, 11], [100, 100, 110, 110]], float)
    assert match_readings(gt, pred, ["B", "A", "far"]) == ["A", "B", None]
    assert match_readings(gt, np.zeros((0, 4)), []) == [None, None, None]
    assert box_iou(gt[:1], gt[:1])[0, 0] == pytest.approx(1.0)
