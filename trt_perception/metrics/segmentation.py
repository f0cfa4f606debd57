"""Semantic-segmentation scores: confusion matrix, per-class IoU and mean IoU (ROS-free, vectorized).

``confusion_matrix`` is one ``np.bincount`` over ``gt * K + pred``; summing matrices over frames and
scoring once gives the dataset IoU (the standard "accumulate, then divide" definition, not a mean of
per-image IoUs). Classes absent from both ground truth and prediction score NaN and are left out of
the mean, so a frame without vehicles does not count as a perfect vehicle score.
"""

from __future__ import annotations

import numpy as np

#: Ground-truth value that marks "don't care" pixels (the Cityscapes/ADE20K convention).
IGNORE_INDEX = 255


def confusion_matrix(
    gt: np.ndarray, pred: np.ndarray, num_classes: int, ignore_index: int | None = IGNORE_INDEX
) -> np.ndarray:
    """``[K, K]`` int64 counts, rows = ground truth, columns = prediction.

    Pixels whose ground truth equals ``ignore_index`` are skipped; predictions outside ``[0, K)`` are
    an error (they would silently land in another cell otherwise).
    """
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    if num_classes <= 0:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    g = gt.reshape(-1).astype(np.int64, copy=False)
    p = pred.reshape(-1).astype(np.int64, copy=False)
    if ignore_index is not None:
        keep = g != ignore_index
        if not keep.all():
            g, p = g[keep], p[keep]
    if g.size:
        bad_g = (g < 0) | (g >= num_classes)
        bad_p = (p < 0) | (p >= num_classes)
        if bad_g.any() or bad_p.any():
            which = "ground truth" if bad_g.any() else "prediction"
            vals = np.unique((g if bad_g.any() else p)[bad_g | bad_p])[:5]
            raise ValueError(f"{which} has class ids {vals.tolist()} outside [0, {num_classes})")
    counts = np.bincount(g * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU = TP / (TP + FP + FN) per class from a confusion matrix; NaN where the class never occurs."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)


def mean_iou(cm: np.ndarray) -> float:
    """Mean of the per-class IoUs over classes present in ground truth or prediction (NaN if none)."""
    ious = iou_per_class(cm)
    return float(np.nanmean(ious)) if np.isfinite(ious).any() else float("nan")


def pixel_accuracy(cm: np.ndarray) -> float:
    """Fraction of scored pixels whose predicted class is right."""
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def scores(cm: np.ndarray, class_names: list[str] | None = None) -> dict[str, object]:
    """A JSON-ready summary: mIoU, pixel accuracy and IoU per class (by name when given)."""
    ious = iou_per_class(cm)
    names = class_names or [str(i) for i in range(len(ious))]
    return {
        "mean_iou": mean_iou(cm),
        "pixel_accuracy": pixel_accuracy(cm),
        "iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, ious)},
    }
