"""Candidate selection and class-aware non-maximum suppression (OpenCV's batched NMS)."""

from __future__ import annotations

import cv2
import numpy as np


def best_class(class_scores: np.ndarray, conf_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per candidate the best class over ``class_scores`` [nc, N] (class-major, as YOLOv8 emits it).

    Returns (candidate indices above ``conf_threshold``, their scores, their class ids). The max is a
    fast reduction over all candidates; the argmax only runs on the few that pass.
    """
    best = class_scores.max(axis=0)
    keep = np.flatnonzero(best > conf_threshold)
    if keep.size == 0:
        return keep, np.zeros(0, np.float32), np.zeros(0, np.int32)
    sub = class_scores[:, keep]
    return keep, best[keep].astype(np.float32), sub.argmax(axis=0).astype(np.int32)


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """Centre-size boxes [N, 4] -> corner boxes [N, 4] float32."""
    out = np.empty((len(xywh), 4), np.float32)
    half = xywh[:, 2:4] * 0.5
    out[:, :2] = xywh[:, :2] - half
    out[:, 2:] = xywh[:, :2] + half
    return out


def nms(
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    iou_threshold: float,
    max_detections: int = 100,
    class_agnostic: bool = False,
) -> np.ndarray:
    """Indices kept by (class-aware unless ``class_agnostic``) NMS, best score first, at most
    ``max_detections``."""
    n = len(scores)
    if n == 0:
        return np.zeros(0, np.int64)
    # float64: OpenCV's binding takes Rect2d, so float64 boxes cross without a per-element cast (half
    # the NMS time for ~100 candidates).
    xywh = np.empty((n, 4), np.float64)
    xywh[:, :2] = boxes_xyxy[:, :2]
    xywh[:, 2:] = boxes_xyxy[:, 2:] - boxes_xyxy[:, :2]
    scores = scores.astype(np.float32, copy=False)
    # Scores were thresholded already; 0 keeps every positive candidate. The cap applies after NMS so that
    # it counts survivors over all classes (OpenCV's top_k would cap before suppression).
    if class_agnostic:
        idx = cv2.dnn.NMSBoxes(xywh, scores, 0.0, float(iou_threshold))
    else:
        idx = cv2.dnn.NMSBoxesBatched(xywh, scores, class_ids.astype(np.int32), 0.0, float(iou_threshold))
    idx = np.asarray(idx, np.int64).reshape(-1)
    order = np.argsort(-scores[idx], kind="stable")  # batched NMS returns class-grouped order
    return idx[order][: max(int(max_detections), 0)]
