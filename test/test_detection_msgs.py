"""Detection2DArray building: the reusable builder gives exactly what ``detections_to_msg`` gives,
frame after frame, as the number of detections grows and shrinks."""

from __future__ import annotations

import numpy as np
from std_msgs.msg import Header

from trt_perception.ros.detection_msgs import DetectionMsgBuilder, detections_to_msg, msg_to_detections
from trt_perception.vision.detections import Detections


def dets(n: int, seed: int) -> Detections:
    rng = np.random.default_rng(seed)
    boxes = rng.uniform(0, 600, (n, 4)).astype(np.float32)
    boxes[:, 2:] += boxes[:, :2]
    # Class 5 has no label: its class_id is the number as text, as in detections_to_msg.
    return Detections(boxes, rng.uniform(0, 1, n), rng.choice([0, 1, 5], n), ["car", "plate"])


def test_builder_equals_detections_to_msg_across_frames() -> None:
    build = DetectionMsgBuilder()
    for frame, n in enumerate([6, 2, 0, 9, 3]):
        d = dets(n, frame)
        header = Header(frame_id="camera")
        header.stamp.sec = frame
        msg = build(d, header)
        assert msg == detections_to_msg(d, header)
        assert len(msg.detections) == n and all(x.header.stamp.sec == frame for x in msg.detections)
        back = msg_to_detections(msg, ["car", "plate"])
        np.testing.assert_allclose(back.boxes, d.boxes, atol=1e-3)
        assert back.names() == d.names()
