"""``Detections`` / plate readings <-> ``vision_msgs/Detection2DArray`` (vision_msgs 4.x layout).

A detection's ``results[0].hypothesis`` carries ``class_id`` (the label, or the plate text) and the
score; ``bbox`` its centre and size in pixels; the array's header is the input image's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from ..vision.detections import Detections


def _detection(header: Any, box: np.ndarray, class_id: str, score: float, det_id: str = "") -> Detection2D:
    d = Detection2D()
    d.header = header
    d.id = det_id
    x1, y1, x2, y2 = (float(v) for v in box)
    d.bbox.center.position.x = (x1 + x2) * 0.5
    d.bbox.center.position.y = (y1 + y2) * 0.5
    d.bbox.size_x = x2 - x1
    d.bbox.size_y = y2 - y1
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis.class_id = class_id
    hyp.hypothesis.score = float(score)
    d.results = [hyp]
    return d


def detections_to_msg(dets: Detections, header: Any) -> Detection2DArray:
    """One Detection2D per detection, class_id = label, stamped with ``header``."""
    msg = Detection2DArray()
    msg.header = header
    names = dets.names()
    boxes, scores = dets.boxes.tolist(), dets.scores.tolist()
    msg.detections = [_detection(header, boxes[i], names[i], scores[i]) for i in range(len(dets))]
    return msg


class DetectionMsgBuilder:
    """``detections_to_msg`` for a publisher's hot path: the same Detection2DArray and a pool of
    Detection2D (with their hypothesis) are refilled every frame instead of built anew, which is most
    of the message cost in Python (~10 -> ~3 us per detection).

    ``rclpy``'s ``publish`` serialises the message before it returns, so reuse is safe as long as the
    caller publishes the returned message and does not keep it past the next call.
    """

    def __init__(self) -> None:
        self._msg = Detection2DArray()
        self._pool: list[Detection2D] = []

    def __call__(self, dets: Detections, header: Any) -> Detection2DArray:
        n = len(dets)
        pool = self._pool
        while len(pool) < n:
            d = Detection2D()
            d.results = [ObjectHypothesisWithPose()]
            pool.append(d)
        labels, nl = dets.labels, len(dets.labels)
        boxes, scores, ids = dets.boxes.tolist(), dets.scores.tolist(), dets.class_ids.tolist()
        for i in range(n):
            d = pool[i]
            d.header = header
            x1, y1, x2, y2 = boxes[i]
            bbox = d.bbox
            c = bbox.center.position
            c.x, c.y = (x1 + x2) * 0.5, (y1 + y2) * 0.5
            bbox.size_x, bbox.size_y = x2 - x1, y2 - y1
            hyp = d.results[0].hypothesis
            k = ids[i]
            hyp.class_id = labels[k] if 0 <= k < nl else str(k)
            hyp.score = scores[i]
        msg = self._msg
        msg.header = header
        msg.detections = pool[:n]
        return msg


def readings_to_msg(readings: Sequence[Any], header: Any) -> Detection2DArray:
    """Plate readings (``box``, ``text``, ``confidence``) -> class_id = text, score = confidence;
    ``id`` also holds the text so tools that match on it find it."""
    msg = Detection2DArray()
    msg.header = header
    msg.detections = [_detection(header, r.box, r.text, r.confidence, r.text) for r in readings]
    return msg


def msg_to_detections(msg: Detection2DArray, labels: Sequence[str] = ()) -> Detections:
    """Back to ``Detections``; class ids index ``labels`` (unknown labels are appended)."""
    names = list(labels)
    boxes, scores, ids = [], [], []
    for d in msg.detections:
        cx, cy = d.bbox.center.position.x, d.bbox.center.position.y
        w, h = d.bbox.size_x, d.bbox.size_y
        boxes.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        if d.results:
            name, score = d.results[0].hypothesis.class_id, d.results[0].hypothesis.score
        else:
            name, score = "", 0.0
        if name not in names:
            names.append(name)
        ids.append(names.index(name))
        scores.append(score)
    if not boxes:
        return Detections.empty(names)
    return Detections(np.array(boxes), np.array(scores), np.array(ids), names)
