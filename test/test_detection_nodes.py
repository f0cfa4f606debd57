"""detector and plate_reader nodes as real processes over Fast DDS: outputs, header, annotated image
only while subscribed, bad input -> throttled WARN while serving, configure error -> ERROR and
unconfigured, no crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from detection_models import constant_model, yolov8_output
from test_plate_reader_stage import pp_ocr_rec, rendered

from trt_perception.io.images import numpy_to_image
from trt_perception.ros.qos import reliable_qos, sensor_qos

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CONFIG = Path(__file__).resolve().parents[1] / "config"
CAR, PLATE = [100.0, 200.0, 500.0, 480.0], [250.0, 400.0, 350.0, 430.0]


def fixed_detector(tmp_path: Path) -> tuple[Path, Path]:
    """A constant YOLOv8-style model: one car and one plate in every 1280x720 frame."""

    def net(b: list[float]) -> list[float]:
        x1, y1, x2, y2 = b[0] * 0.5, b[1] * 0.5 + 140, b[2] * 0.5, b[3] * 0.5 + 140
        return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]

    out = yolov8_output(np.array([net(CAR), net(PLATE)]), np.array([0, 1]), np.array([0.9, 0.8]), nc=2)
    model = constant_model(tmp_path / "fixed.onnx", {"output0": out}, input_shape=(1, 3, 640, 640))
    (tmp_path / "fixed_labels.txt").write_text("car\nplate\n")
    return model, tmp_path / "fixed_labels.txt"


class Probe:
    """Publishers and recorders on the test's own rclpy node."""

    def __init__(self, node: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Detection2DArray

        self.node = node
        self.got: dict[str, list[Any]] = {"detections": [], "plates": [], "annotated": [], "diag": []}
        self.image_pub = node.create_publisher(Image, "camera/image_raw", reliable_qos(5))
        self.det_pub = node.create_publisher(Detection2DArray, "detections", reliable_qos(10))
        for key, typ, topic in (
            ("detections", Detection2DArray, "detections"),
            ("plates", Detection2DArray, "plates"),
        ):
            node.create_subscription(typ, topic, self.got[key].append, reliable_qos(10))
        node.create_subscription(DiagnosticArray, "/diagnostics", self.got["diag"].append, reliable_qos(50))

    def listen_annotated(self, topic: str) -> Any:
        from sensor_msgs.msg import Image

        return self.node.create_subscription(Image, topic, self.got["annotated"].append, sensor_qos(2))

    def image(self, arr: np.ndarray, sec: int, encoding: str = "bgr8") -> Any:
        msg = numpy_to_image(arr, encoding)
        msg.header.stamp.sec, msg.header.frame_id = sec, "cam"
        return msg

    def statuses(self, prefix: str) -> list[Any]:
        """Every status of node ``/<prefix>`` (named '<fully qualified node name>: <group>')."""
        return [s for a in self.got["diag"] for s in a.status if s.name.startswith(f"/{prefix}:")]

    def wait_subscribed(self, pub: Any, timeout: float = 15.0) -> None:
        assert self.node.spin_until(lambda: pub.get_subscription_count() > 0, timeout), (
            "node did not subscribe"
        )


def test_detector_node(ros_node: Any, start_node: Any, tmp_path: Path) -> None:
    model, labels = fixed_detector(tmp_path)
    proc = start_node(
        "detector",
        params_file=CONFIG / "detector.yaml",
        params={"model": str(model), "labels": str(labels), "diagnostics_period": 0.3},
    )
    probe = Probe(ros_node)
    probe.wait_subscribed(probe.image_pub)
    frame = np.zeros((720, 1280, 3), np.uint8)

    def publish_until(n: int, msg: Any) -> bool:
        def cond() -> bool:
            if len(probe.got["detections"]) < n:
                probe.image_pub.publish(msg)
            return len(probe.got["detections"]) >= n

        return ros_node.spin_until(cond, 20.0)

    assert publish_until(1, probe.image(frame, 7)), proc.log()
    out = probe.got["detections"][0]
    assert out.header.stamp.sec == 7 and out.header.frame_id == "cam"
    assert [d.results[0].hypothesis.class_id for d in out.detections] == ["car", "plate"]
    car = out.detections[0]
    assert car.bbox.center.position.x == pytest.approx(300, abs=0.1) and car.bbox.size_x == pytest.approx(
        400, abs=0.1
    )
    assert car.bbox.center.position.y == pytest.approx(340, abs=0.1) and car.bbox.size_y == pytest.approx(
        280, abs=0.1
    )
    assert car.results[0].hypothesis.score == pytest.approx(0.9, abs=1e-4)
    assert not probe.got["annotated"], "no annotated image without a subscriber"

    # A best-effort publisher (most camera drivers) matches the sensor-data subscription too.
    from sensor_msgs.msg import Image

    best_effort = ros_node.create_publisher(Image, "camera/image_raw", sensor_qos(5))
    n = len(probe.got["detections"])

    def via_best_effort() -> bool:
        best_effort.publish(probe.image(frame, 70))
        return any(m.header.stamp.sec == 70 for m in probe.got["detections"][n:])

    assert ros_node.spin_until(via_best_effort, 15.0)

    # Bad input: wrong encoding, zero size, mis-stepped -> WARN naming the problem; node keeps serving.
    bad_enc = probe.image(np.zeros((4, 4), np.float32), 8, "32FC1")
    zero = probe.image(frame, 9)
    zero.height = zero.width = 0
    zero.data = b""
    short = probe.image(frame, 10)
    short.step = 100  # shorter than a row
    for msg, text in ((bad_enc, "32FC1"), (zero, "empty image"), (short, "step smaller")):

        def warned(msg: Any = msg, text: str = text) -> bool:
            probe.image_pub.publish(msg)
            # WARN at least (the made-up stamps' frame age is an ERROR of its own)
            # The summary's message names the worst problem; every problem is one of its values.
            return any(
                s.level >= b"\x01" and (text in s.message or any(text in v.value for v in s.values))
                for s in probe.statuses("detector")
            )

        assert ros_node.spin_until(warned, 10), [s.message for s in probe.statuses("detector")][-2:]
    n = len(probe.got["detections"])
    assert publish_until(n + 1, probe.image(frame, 11)) and proc.alive()
    assert proc.log().count("32FC1") <= 2, "warnings are throttled"

    # Annotated image appears once someone subscribes.
    probe.listen_annotated("detections/image")

    def annotated() -> bool:
        probe.image_pub.publish(probe.image(frame, 12))
        return bool(probe.got["annotated"])

    assert ros_node.spin_until(annotated, 15.0)
    img = probe.got["annotated"][-1]
    assert (img.width, img.height, img.encoding) == (1280, 720, "bgr8")
    latency_keys = {kv.key for s in probe.statuses("detector") for kv in s.values}
    assert {
        "preprocess.mean_ms",
        "inference.mean_ms",
        "postprocess.mean_ms",
        "end_to_end.mean_ms",
    } <= latency_keys


def test_detector_configure_error_reports_and_stays_unconfigured(
    ros_node: Any, start_node: Any, tmp_path: Path
) -> None:
    """Without exit_on_error (the node's default) a failed configure leaves the node up, unconfigured,
    with one ERROR line and an ERROR status naming the cause."""
    from ros_clients import lifecycle_state

    proc = start_node(
        "detector",
        params_file=CONFIG / "detector.yaml",
        params={"model": str(tmp_path / "missing.onnx"), "diagnostics_period": 0.3},
    )
    probe = Probe(ros_node)
    assert ros_node.spin_until(
        lambda: any(s.level == b"\x02" and "missing.onnx" in s.message for s in probe.statuses("detector")),
        20,
    ), proc.log()
    assert lifecycle_state(ros_node, "detector") == "unconfigured"
    assert proc.alive() and proc.log().count("configure: model file not found") == 1, proc.log()
    assert "Traceback" not in proc.log()


def test_detector_without_labels_warns_and_serves(ros_node: Any, start_node: Any, tmp_path: Path) -> None:
    """A user's model whose labels are lost (no parameter, no metadata, no sidecar file): the node
    serves class ids, and a lasting WARN on /diagnostics says why, not a silent change of class names."""
    model, labels = fixed_detector(tmp_path)
    labels.unlink()
    proc = start_node(
        "detector",
        params_file=CONFIG / "detector.yaml",
        params={"model": str(model), "diagnostics_period": 0.3},
    )
    probe = Probe(ros_node)
    probe.wait_subscribed(probe.image_pub)
    msg = probe.image(np.zeros((720, 1280, 3), np.uint8), 7)

    def answered() -> bool:
        probe.image_pub.publish(msg)
        return bool(probe.got["detections"])

    assert ros_node.spin_until(answered, 20.0), proc.log()
    assert [d.results[0].hypothesis.class_id for d in probe.got["detections"][0].detections] == ["0", "1"]
    assert ros_node.spin_until(
        lambda: any(
            s.level >= b"\x01" and any("fixed.onnx: no labels" in v.value for v in s.values)
            for s in probe.statuses("detector")
        ),
        10,
    ), [s.message for s in probe.statuses("detector")][-2:]
    assert proc.log().count("no labels") == 1, proc.log()


def test_plate_reader_node_matches_stamps(ros_node: Any, start_node: Any, tmp_path: Path) -> None:
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
            "diagnostics_period": 0.3,
        },
    )
    probe = Probe(ros_node)
    probe.wait_subscribed(probe.image_pub)
    probe.wait_subscribed(probe.det_pub)
    frame = np.full((720, 1280, 3), 90, np.uint8)
    crop = rendered("AB12CDE")
    frame[100 : 100 + crop.shape[0], 200 : 200 + crop.shape[1]] = crop
    box = [200, 100, 200 + crop.shape[1], 100 + crop.shape[0]]
    dets = Detections(
        np.array([box, [0, 300, 600, 700]]), np.array([0.9, 0.8]), np.array([1, 0]), ["car", "plate"]
    )

    def send(sec: int, with_image: bool = True, empty: bool = False) -> None:
        img = probe.image(frame, sec)
        msg = detections_to_msg(Detections.empty(["car", "plate"]) if empty else dets, img.header)
        probe.det_pub.publish(msg)
        if with_image:
            probe.image_pub.publish(img)

    send(1, with_image=False)  # no image with this stamp: nothing may come out
    for sec in (2, 3):
        send(sec)
    assert ros_node.spin_until(lambda: len(probe.got["plates"]) >= 1, 20), proc.log()
    out = probe.got["plates"][0]
    assert out.header.stamp.sec in (2, 3) and len(out.detections) == 1
    reading = out.detections[0]
    assert reading.results[0].hypothesis.class_id == "AB12CDE" and reading.id == "AB12CDE"
    assert reading.results[0].hypothesis.score > 0.5
    assert reading.bbox.size_x == pytest.approx(crop.shape[1], abs=0.01)
    assert all(m.header.stamp.sec != 1 for m in probe.got["plates"])
    # Frames without plates publish an empty array.
    send(4, empty=True)
    assert ros_node.spin_until(lambda: any(m.header.stamp.sec == 4 for m in probe.got["plates"]), 10)
    last = next(m for m in probe.got["plates"] if m.header.stamp.sec == 4)
    assert isinstance(last, Detection2DArray) and not last.detections
    _ = cv2  # rendered() uses OpenCV


def test_detector_node_tracks_when_asked(ros_node: Any, start_node: Any, tmp_path: Path) -> None:
    """``tracking:=true``: the same detections also come out on ``tracks`` with stable IDs in ``id``."""
    from vision_msgs.msg import Detection2DArray

    model, labels = fixed_detector(tmp_path)
    proc = start_node(
        "detector",
        params_file=CONFIG / "detector.yaml",
        params={"model": str(model), "labels": str(labels), "tracking": True},
    )
    probe = Probe(ros_node)
    tracks: list[Any] = []
    ros_node.create_subscription(Detection2DArray, "tracks", tracks.append, reliable_qos(10))
    probe.wait_subscribed(probe.image_pub)
    frame = np.zeros((720, 1280, 3), np.uint8)
    sec = iter(range(1, 1000))

    def five_tracked() -> bool:
        probe.image_pub.publish(probe.image(frame, next(sec)))
        return len(tracks) >= 5

    assert ros_node.spin_until(five_tracked, 30.0), proc.log()
    for msg in tracks:
        ids = {d.results[0].hypothesis.class_id: d.id for d in msg.detections}
        assert ids == {"car": "1", "plate": "2"}, ids
    assert all(m.header.frame_id == "cam" and m.header.stamp.sec > 0 for m in tracks), "the input's header"
    assert proc.alive()
