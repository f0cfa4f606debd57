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


def _refused(node: Any, target: str, reason: str, **values: Any) -> None:
    result = set_params(node, target, **values)
    assert not result.successful and reason in result.reason, (values, result.reason)


def _ok(node: Any, target: str, **values: Any) -> None:
    result = set_params(node, target, **values)
    assert result.successful, result.reason


def test_plate_reader_live_parameters(start_node: Any) -> None:
    import cv2
    from test_plate_reader_stage import pp_ocr_rec, rendered
    from vision_msgs.msg import Detection2DArray

    from trt_perception.ros.detection_msgs import detections_to_msg
    from trt_perception.vision.detections import Detections

    proc = start_node(
        "plate_reader",
        params_file=CONFIG / "plate_reader.yaml",
        params={
            "model": str(pp_ocr_rec()),
            "input_height": 48,
            "input_width": 320,
            "publish_annotated": False,
        },
        env={"ROS_DOMAIN_ID": DOMAIN},
    )
    frame = np.full((720, 1280, 3), 90, np.uint8)
    crop = rendered("AB12CDE")
    frame[100 : 100 + crop.shape[0], 200 : 200 + crop.shape[1]] = crop
    cv2.putText(frame, "XY34", (40, 600), cv2.FONT_HERSHEY_SIMPLEX, 3.0, (250, 250, 250), 6)
    plate = [200, 100, 200 + crop.shape[1], 100 + crop.shape[0]]  # 276x64
    dets = Detections(
        np.array([plate, [0, 500, 600, 700]]), np.array([0.9, 0.8]), np.array([1, 0]), ["car", "plate"]
    )
    with probe_node(DOMAIN) as node:
        frames = Frames(node, frame, Detection2DArray, "plates")
        det_pub = node.create_publisher(Detection2DArray, "detections", reliable_qos(10))
        image_pub = frames.pub

        def texts() -> list[str]:
            """Send image + detections pairs until one sent from now on is answered: its texts."""
            first = frames.sec + 1

            def answered() -> bool:
                frames.sec += 1
                img = numpy_to_image(frame, "bgr8")
                img.header.stamp.sec = frames.sec
                det_pub.publish(detections_to_msg(dets, img.header))
                image_pub.publish(img)
                return any(m.header.stamp.sec >= first for m in frames.got)

            assert node.spin_until(answered, 30.0), proc.log()
            msg = next(m for m in frames.got if m.header.stamp.sec >= first)
            return [d.results[0].hypothesis.class_id for d in msg.detections]

        assert texts() == ["AB12CDE"]
        for values, defaults in (
            ({"min_confidence": 0.999}, {"min_confidence": 0.0}),
            ({"min_width": 300}, {"min_width": 16}),
            ({"min_height": 65}, {"min_height": 8}),
            ({"max_width": 250}, {"max_width": 0}),
            ({"max_height": 60}, {"max_height": 0}),
        ):
            _ok(node, "plate_reader", **values)
            assert texts() == [], values
            _ok(node, "plate_reader", **defaults)
            assert texts() == ["AB12CDE"], defaults
        _ok(node, "plate_reader", plate_class="car")  # the car box is read instead
        assert texts() not in ([], ["AB12CDE"])
        _ok(node, "plate_reader", plate_class="plate")
        assert texts() == ["AB12CDE"]
        _refused(node, "plate_reader", "expected int, got str", min_width="wide")
        _refused(node, "plate_reader", "is read at configure", decoder="heads")

        def pairs_silent() -> bool:
            n = len(frames.got)
            for _ in range(10):
                frames.sec += 1
                img = numpy_to_image(frame, "bgr8")
                img.header.stamp.sec = frames.sec
                det_pub.publish(detections_to_msg(dets, img.header))
                image_pub.publish(img)
                node.spin_until(lambda: False, 0.15)
            return len(frames.got) == n

        _ok(node, "plate_reader", enabled=False)
        node.spin_until(lambda: False, 0.5)
        assert pairs_silent()
        _ok(node, "plate_reader", enabled=True)
        assert texts() == ["AB12CDE"]
    assert proc.alive()


def test_segmentation_live_parameters(start_node: Any) -> None:
    import segmentation_standin as standin
    from sensor_msgs.msg import Image

    from trt_perception.io.images import image_to_numpy

    proc = start_node("segmentation", params_file=CONFIG / "segmentation.yaml", env={"ROS_DOMAIN_ID": DOMAIN})
    bgr, _ = standin.synthetic_frame(240, 320, seed=2)
    with probe_node(DOMAIN) as node:
        frames = Frames(node, bgr, Image, "segmentation/mask")
        overlays: list[Any] = []
        node.create_subscription(Image, "segmentation/overlay", overlays.append, reliable_qos(10))

        def overlay() -> np.ndarray:
            first = frames.sec + 1
            assert node.spin_until(
                lambda: (
                    frames.next_answer() is not None and any(m.header.stamp.sec >= first for m in overlays)
                ),
                30,
            )
            return image_to_numpy(next(m for m in overlays if m.header.stamp.sec >= first))

        mask = frames.next_answer(60.0)
        assert (mask.width, mask.height) == (320, 240), proc.log()
        _ok(node, "segmentation", output_resolution="network")
        mask = frames.next_answer()
        assert (mask.width, mask.height) == (640, 352)
        _ok(node, "segmentation", output_resolution="input")
        assert (frames.next_answer().width, frames.next_answer().height) == (320, 240)
        half = overlay()
        _ok(node, "segmentation", overlay_alpha=0.0)
        assert np.array_equal(overlay(), bgr)  # no colour at all
        _ok(node, "segmentation", overlay_alpha=1.0)
        full = overlay()
        assert not np.array_equal(full, bgr) and not np.array_equal(full, half)
        _refused(node, "segmentation", "output_resolution must be one of", output_resolution="half")
        _refused(node, "segmentation", "outside [0.0, 1.0]", overlay_alpha=2.0)
        _refused(node, "segmentation", "is read at configure", argmax="gpu")
        _ok(node, "segmentation", enabled=False)
        assert frames.silent()
        _ok(node, "segmentation", enabled=True)
        frames.next_answer()
    assert proc.alive()


def test_pilot_live_parameters(start_node: Any) -> None:
    from geometry_msgs.msg import Twist
    from sensor_msgs.msg import Image

    from trt_perception.sim.circuits import get_circuit
    from trt_perception.sim.render import CircuitRenderer

    proc = start_node("pilot", params_file=CONFIG / "pilot.yaml", env={"ROS_DOMAIN_ID": DOMAIN})
    c = get_circuit("simple")
    frame = CircuitRenderer(c).render(*c.start_pose())
    with probe_node(DOMAIN) as node:
        twists: list[Twist] = []
        node.create_subscription(Twist, "cmd_vel", twists.append, reliable_qos(50))
        pub = node.create_publisher(Image, "camera/image_raw", reliable_qos(2))
        msg = numpy_to_image(frame, "bgr8")

        def command(n: int = 3) -> Twist:
            """The n-th command for frames sent from now on (earlier frames may still be answered)."""
            start = len(twists)

            def enough() -> bool:
                pub.publish(msg)
                return len(twists) >= start + n

            assert node.spin_until(enough, 30.0), proc.log()
            return twists[start + n - 1]

        base = command()
        assert 2.0 <= base.linear.x <= 12.0, proc.log()
        _ok(node, "pilot", v_min=0.0, v_max=1.0)
        cmd = command()
        assert 0.0 <= cmd.linear.x <= 1.0
        assert cmd.linear.x == pytest.approx((base.linear.x - 2.0) / 10.0, abs=1e-3)  # the same raw output
        _ok(node, "pilot", w_min=-0.01, w_max=0.01)
        assert abs(command().angular.z) <= 0.01
        _ok(node, "pilot", v_max=12.0, v_min=2.0, w_max=2.0, w_min=-2.0)  # one by one: in range each time
        assert command().linear.x == pytest.approx(base.linear.x, abs=1e-4)
        _ok(node, "pilot", crop_top=0, crop_bottom=240)  # the sky half: another input, another command
        assert command().linear.x != pytest.approx(base.linear.x, abs=1e-4)
        _ok(node, "pilot", crop_bottom=480, crop_top=240)
        assert command().linear.x == pytest.approx(base.linear.x, abs=1e-4)
        _refused(node, "pilot", "command ranges must be increasing", v_max=1.0)
        _refused(node, "pilot", "is read at configure", cmd_vel_topic="other")
        _ok(node, "pilot", enabled=False)
        assert node.spin_until(lambda: twists[-1].linear.x == 0.0 and twists[-1].angular.z == 0.0, 5.0)
        n = len(twists)
        for _ in range(10):
            pub.publish(msg)
            node.spin_until(lambda: False, 0.1)
        assert len(twists) == n, "disabled: no commands"
        _ok(node, "pilot", enabled=True)
        command()
    assert proc.alive()


def test_camera_bridge_live_parameters(start_node: Any, tmp_path: Path) -> None:
    import cv2
    from sensor_msgs.msg import Image

    from trt_perception.ros.qos import sensor_qos

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((48, 64, 3), 40 * i, np.uint8))
    proc = start_node(
        "camera_bridge",
        params_file=CONFIG / "camera_bridge.yaml",
        params={"source": str(folder), "loop": True, "rate_hz": 20.0},
        env={"ROS_DOMAIN_ID": DOMAIN},
    )
    with probe_node(DOMAIN) as node:
        images: list[Any] = []
        node.create_subscription(Image, "camera/image_raw", images.append, sensor_qos(50))

        def image(n: int = 3) -> Any:
            start = len(images)
            assert node.spin_until(lambda: len(images) >= start + n, 30.0), proc.log()
            return images[-1]

        assert (image().header.frame_id, images[-1].encoding) == ("camera", "bgr8")
        _ok(node, "camera_bridge", frame_id="front")
        assert image().header.frame_id == "front"
        _ok(node, "camera_bridge", encoding="mono8")
        assert image().encoding == "mono8"
        _refused(node, "camera_bridge", "unknown output encoding 'bogus'", encoding="bogus")
        _refused(node, "camera_bridge", "is read at configure", source="/dev/video0")
        _ok(node, "camera_bridge", enabled=False)
        node.spin_until(lambda: False, 0.5)
        n = len(images)
        node.spin_until(lambda: False, 1.5)
        assert len(images) == n, "disabled: no images"
        _ok(node, "camera_bridge", enabled=True)
        assert image().encoding == "mono8"
    assert proc.alive()


def test_perception_pipeline_live_parameters(start_node: Any, sample_data: Any) -> None:
    import time

    from vision_msgs.msg import Detection2DArray

    proc = start_node(
        "perception_pipeline",
        params_file=CONFIG / "perception_pipeline.yaml",
        params={"camera.source": str(sample_data.video), "camera.loop": True, "camera.rate_hz": 15.0},
        env={"ROS_DOMAIN_ID": DOMAIN},
    )
    with probe_node(DOMAIN) as node:
        got: list[Any] = []
        node.create_subscription(Detection2DArray, "detections", got.append, reliable_qos(100))

        def after_set(n: int = 5) -> list[list[tuple[str, float]]]:
            """Labels and scores of ``n`` frames captured from now on (earlier ones may still come)."""
            since = time.time_ns() + 300_000_000
            fresh = lambda: [m for m in got if m.header.stamp.sec * 10**9 + m.header.stamp.nanosec > since]  # noqa: E731
            assert node.spin_until(lambda: len(fresh()) >= n, 60.0), proc.log()
            return [_labels(m) for m in fresh()[:n]]

        assert any(after_set(10)), proc.log()  # the sample scene has cars and plates
        _ok(node, "perception_pipeline", **{"detector.conf_threshold": 0.99})
        assert not any(after_set())
        _ok(node, "perception_pipeline", **{"detector.conf_threshold": 0.25, "detector.classes": ["plate"]})
        frames = after_set(10)
        assert any(frames) and all(label == "plate" for f in frames for label, _ in f)
        _ok(node, "perception_pipeline", **{"detector.classes": [], "detector.max_detections": 1})
        assert all(len(f) <= 1 for f in after_set(10))
        _refused(node, "perception_pipeline", "is read at configure", **{"detector.model": "other.onnx"})
        _ok(node, "perception_pipeline", enabled=False)
        node.spin_until(lambda: False, 0.5)
        n = len(got)
        node.spin_until(lambda: False, 1.5)
        assert len(got) == n, "disabled: no output"
        _ok(node, "perception_pipeline", enabled=True)
        after_set(1)
    assert proc.alive()
