"""Detection2DArray building: the reusable builder and its CDR writer give exactly what
``detections_to_msg`` (and rclpy's serialisation) give, frame after frame, as the number of
detections grows and shrinks."""

from __future__ import annotations

import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

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
    assert build.serialize, "the CDR writer agrees with rclpy here"
    for frame, n in enumerate([6, 2, 0, 9, 3]):
        d = dets(n, frame)
        header = Header(frame_id="camera" if frame % 2 else "cam_7")
        header.stamp.sec, header.stamp.nanosec = 1_700_000_000 + frame, 999_999_999
        want = detections_to_msg(d, header)
        data = build(d, header)
        assert isinstance(data, bytes) and len(data) == len(serialize_message(want))
        assert deserialize_message(data, Detection2DArray) == want
        msg = build.build(d, header)
        assert msg == want
        assert len(msg.detections) == n and all(
            x.header.stamp.sec == header.stamp.sec for x in msg.detections
        )
        back = msg_to_detections(msg, ["car", "plate"])
        np.testing.assert_allclose(back.boxes, d.boxes, atol=1e-3)
        assert back.names() == d.names()
