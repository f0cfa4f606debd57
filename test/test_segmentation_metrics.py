"""Confusion matrix, IoU and mIoU against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from trt_perception.metrics.segmentation import (
    confusion_matrix,
    iou_per_class,
    mean_iou,
    pixel_accuracy,
    scores,
)


def test_hand_computed_example() -> None:
    gt = np.array([[0, 0, 1, 1], [2, 2, 2, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 2, 0, 0]], np.uint8)
    cm = confusion_matrix(gt, pred, 3)
    # rows = gt, cols = pred; the 255 pixel is ignored
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    # class 0: TP 1, FP 1 (gt 2 -> 0), FN 1 (gt 0 -> 1) -> 1/3
    # class 1: TP 2, FP 1, FN 0 -> 2/3 ; class 2: TP 2, FP 0, FN 1 -> 2/3
    np.testing.assert_allclose(iou_per_class(cm), [1 / 3, 2 / 3, 2 / 3])
    assert mean_iou(cm) == pytest.approx(5 / 9)
    assert pixel_accuracy(cm) == pytest.approx(5 / 7)


def test_absent_class_is_nan_and_left_out_of_the_mean() -> None:
    gt = np.array([0, 0, 1, 1])
    cm = confusion_matrix(gt, gt.copy(), 4)
    ious = iou_per_class(cm)
    assert ious[:2].tolist() == [1.0, 1.0]
    assert np.isnan(ious[2:]).all()
    assert mean_iou(cm) == 1.0
    assert scores(cm, ["bg", "road", "lane", "car"])["iou"]["car"] is None


def test_accumulates_over_frames_like_one_big_frame() -> None:
    rng = np.random.default_rng(0)
    gts = [rng.integers(0, 4, (30, 40)) for _ in range(3)]
    preds = [rng.integers(0, 4, (30, 40)) for _ in range(3)]
    total = sum(confusion_matrix(g, p, 4) for g, p in zip(gts, preds))
    np.testing.assert_array_equal(total, confusion_matrix(np.stack(gts), np.stack(preds), 4))


def test_rejects_mismatch_and_out_of_range() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 2)
    with pytest.raises(ValueError, match=r"prediction has class ids \[7\]"):
        confusion_matrix(np.zeros(3, np.uint8), np.array([0, 7, 1]), 4)
