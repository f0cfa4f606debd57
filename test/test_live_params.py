"""Live parameters, set over SetParameters on the nodes as processes: each one changes the next
outputs; a reload parameter or a wrong type is refused with the reason; ``enabled`` pauses output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from detection_models import constant_model, yolov8_output
from ros_clients import own_domain, probe_node, set_params

from trt_perception.io.images import numpy_to_image
from trt_perception.ros.qos import reliable_qos

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CONFIG = Path(__file__).resolve().parents[1] / "config"
DOMAIN = own_domain(41)

#: Four boxes in a 1280x720 frame (label, score, box): B overlaps A (same class, IoU 0.72: NMS at the
#: default 0.45 removes it), D overlaps A (another class, IoU 0.94: only class-agnostic NMS removes it).
A = ("car", 0.9, [100.0, 200.0, 500.0, 480.0])
B = ("car", 0.7, [140.0, 220.0, 540.0, 500.0])
C = ("plate", 0.8, [800.0, 400.0, 900.0, 430.0])
D = ("plate", 0.6, [110.0, 210.0, 500.0, 480.0])


def four_box_detector(tmp_path: Path) -> tuple[Path, Path]:
    def net(b: list[float]) -> list[float]:  # source pixels -> the 640x640 letterbox (scale 0.5, +140 rows)
        x1, y1, x2, y2 = b[0] * 0.5, b[1] * 0.5 + 140, b[2] * 0.5, b[3] * 0.5 + 140
        return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]

    boxes = [A, B, C, D]
    out = yolov8_output(
        np.array([net(b) for _, _, b in boxes]),
        np.array([0 if c == "car" else 1 for c, _, _ in boxes]),
        np.array([s for _, s, _ in boxes]),
        nc=2,
    )
    model = constant_model(tmp_path / "four.onnx", {"output0": out}, input_shape=(1, 3, 640, 640))
    (tmp_path / "four_labels.txt").write_text("car\nplate\n")
    return model, tmp_path / "four_labels.txt"


class Frames:
    """Publishes frames with increasing stamps and collects the node's answers to the newest ones."""

    def __init__(self, node: Any, image: np.ndarray, out_type: Any, out_topic: str) -> None:
        from sensor_msgs.msg import Image

        self.node, self.image = node, image
        self.sec = 0
        self.got: list[Any] = []
        self.pub = node.create_publisher(Image, "camera/image_raw", reliable_qos(5))
        node.create_subscription(out_type, out_topic, self.got.append, reliable_qos(50))

    def next_answer(self, timeout: float = 20.0) -> Any:
        """Publish frames until one published from now on is answered; that answer."""
        first = self.sec + 1

        def answered() -> bool:
            self.sec += 1
            msg = numpy_to_image(self.image, "bgr8")
            msg.header.stamp.sec = self.sec
            self.pub.publish(msg)
            return any(m.header.stamp.sec >= first for m in self.got)

        assert self.node.spin_until(answered, timeout), "no answer"
        return next(m for m in self.got if m.header.stamp.sec >= first)

    def silent(self, seconds: float = 2.0) -> bool:
        """True when frames published for ``seconds`` get no answer."""
        n = len(self.got)

        def publish() -> bool:
            self.sec += 1
            msg = numpy_to_image(self.image, "bgr8")
            msg.header.stamp.sec = self.sec
            self.pub.publish(msg)
            return False

        self.node.spin_until(publish, seconds)
        self.node.spin_until(lambda: False, 0.5)  # answers already under way
        return len(self.got) == n


def _labels(msg: Any) -> list[tuple[str, float]]:
    return [
        (d.results[0].hypothesis.class_id, round(d.results[0].hypothesis.score, 2)) for d in msg.detections
    ]


def test_detector_live_parameters(start_node: Any, tmp_path: Path) -> None:
    from vision_msgs.msg import Detection2DArray

    model, labels = four_box_detector(tmp_path)
    proc = start_node(
        "detector",
        params_file=CONFIG / "detector.yaml",
        params={"model": str(model), "labels": str(labels), "publish_annotated": False},
        env={"ROS_DOMAIN_ID": DOMAIN},
    )
    with probe_node(DOMAIN) as node:
        frames = Frames(node, np.zeros((720, 1280, 3), np.uint8), Detection2DArray, "detections")
        assert _labels(frames.next_answer(60.0)) == [("car", 0.9), ("plate", 0.8), ("plate", 0.6)], proc.log()

        def after(expected: list[tuple[str, float]], **values: Any) -> None:
            result = set_params(node, "detector", **values)
            assert result.successful, result.reason
            assert _labels(frames.next_answer()) == expected, values

        after([("car", 0.9)], conf_threshold=0.85)
        after([("car", 0.9), ("plate", 0.8), ("plate", 0.6)], conf_threshold=0.25)
        after([("plate", 0.8), ("plate", 0.6)], classes=["plate"])
        after([("car", 0.9)], classes=[0])  # an id: an int array where labels are strings
        after([("car", 0.9), ("plate", 0.8), ("plate", 0.6)], classes=["car", "plate"])
        after([("car", 0.9)], max_detections=1)
        after(
            [("car", 0.9), ("plate", 0.8), ("car", 0.7), ("plate", 0.6)],
            max_detections=100,
            iou_threshold=0.8,
        )
        after([("car", 0.9), ("plate", 0.8)], iou_threshold=0.45, class_agnostic_nms=True)
        after([("car", 0.9), ("plate", 0.8), ("plate", 0.6)], class_agnostic_nms=False)

        # Refused, with the reason, and nothing changes: a wrong type, a value out of range, a class
        # the model does not know, a parameter that needs a reload.
        for values, reason in (
            ({"conf_threshold": "high"}, "expected float, got str"),
            ({"conf_threshold": 1.5}, "outside [0.0, 1.0]"),
            ({"classes": ["bus"]}, "unknown class 'bus'"),
            ({"max_detections": [1]}, "expected int, got int array"),
            ({"model": "other.onnx"}, "is read at configure"),
            ({"image_topic": "other/image"}, "is read at configure"),
        ):
            result = set_params(node, "detector", **values)
            assert not result.successful and reason in result.reason, (values, result.reason)
        assert _labels(frames.next_answer()) == [("car", 0.9), ("plate", 0.8), ("plate", 0.6)]

        assert set_params(node, "detector", enabled=False).successful
        assert frames.silent(), "enabled false: no output"
        assert set_params(node, "detector", enabled=True).successful
        frames.next_answer()
    assert proc.alive()
