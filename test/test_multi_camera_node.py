"""perception_pipeline with several cameras, as a process over Fast DDS: two camera sources (two clips of
the sample video, different sizes) and two image topics, batched through one detector call; each
camera's topics (``<name>/detections``...) carry what a single-camera run gives on its frames, with
its own header; a camera that cannot open or goes silent stalls nobody and /diagnostics names it;
a fixed-batch detector is a configure error that says so."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from detection_models import constant_model, yolov8_output
from ros_clients import change_state, set_params
from ros_domain import use_own_domain

from trt_perception.io.images import numpy_to_image
from trt_perception.io.stamps import set_time, stamp_ns
from trt_perception.nodes.perception_pipeline import PARAMETERS
from trt_perception.ros.detection_msgs import msg_to_detections
from trt_perception.ros.qos import reliable_qos
from trt_perception.stages.detector import Detector, DetectorConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
DETECTOR = ROOT / "models" / "detector.onnx"
#: Two cameras: a clip of the sample video at 720p, another (120 frames later) at 960x540.
CLIPS = (("front", 0, (1280, 720)), ("rear", 120, (960, 540)))


@pytest.fixture
def own_domain(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    return use_own_domain(request, monkeypatch)


def clip(video: Path, folder: Path, start: int, size: tuple[int, int], count: int = 24) -> list[np.ndarray]:
    """``count`` frames of ``video`` from ``start``, resized, written as a JPEG folder (a camera
    source); returns them as read back, the bytes that camera delivers."""
    folder.mkdir()
    cap = cv2.VideoCapture(str(video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = []
    for i in range(count):
        ok, img = cap.read()
        assert ok
        path = folder / f"{i:03d}.jpg"
        cv2.imwrite(str(path), cv2.resize(img, size))
        frames.append(cv2.imread(str(path)))
    cap.release()
    return frames


def alone(frames: list[np.ndarray]) -> list[Any]:
    """The detections a single-camera run gives on each frame (the node's detector defaults)."""
    det = Detector(DetectorConfig(model=str(DETECTOR)))
    return [det(f) for f in frames]


def matches(msg: Any, want: Any) -> bool:
    got = msg_to_detections(msg, want.labels)
    if len(got) != len(want):
        return False
    order, ref = np.lexsort(got.boxes.T[::-1]), np.lexsort(want.boxes.T[::-1])
    return bool(
        np.allclose(got.boxes[order], want.boxes[ref], atol=0.5)
        and np.array_equal(got.class_ids[order], want.class_ids[ref])
        and np.allclose(got.scores[order], want.scores[ref], atol=1e-3)
    )


def frame_of(msg: Any, singles: list[Any]) -> int | None:
    """The frame whose single-camera detections ``msg`` carries (None: none of this camera's)."""
    return next((k for k, want in enumerate(singles) if len(want) and matches(msg, want)), None)


class Listener:
    """Each camera's detections and tracks, and /diagnostics, on the test's node."""

    def __init__(self, node: Any, names: list[str]) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from vision_msgs.msg import Detection2DArray

        self.node = node
        self.got: dict[str, list[Any]] = {}
        for name in names:
            for topic in ("detections", "tracks"):
                key = f"{name}/{topic}"
                self.got[key] = []
                node.create_subscription(Detection2DArray, key, self.got[key].append, reliable_qos(100))
        self.diag: list[Any] = []
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diag.append, reliable_qos(50))

    def status(self, suffix: str) -> Any:
        """The newest status named ``<fqn>: <suffix>``."""
        found = [s for m in self.diag for s in m.status if s.name == f"/perception_pipeline: {suffix}"]
        return found[-1] if found else None


@pytest.mark.ros
@pytest.mark.slow
def test_two_camera_sources_publish_each_cameras_own_results(
    own_domain: str, ros_node: Any, start_node: Any, sample_data: Any, tmp_path: Path
) -> None:
    feeds = {name: clip(sample_data.video, tmp_path / name, start, size) for name, start, size in CLIPS}
    singles = {name: alone(frames) for name, frames in feeds.items()}
    names = [name for name, _, _ in CLIPS]
    listener = Listener(ros_node, names)
    proc = start_node(
        "perception_pipeline",
        params_file=CONFIG / "perception_pipeline.yaml",
        params={
            "camera.sources": [str(tmp_path / n) for n in names],
            "camera_names": names,
            "camera_frame_ids": [f"{n}_optical" for n in names],
            "camera.rate_hz": 8.0,
            "camera.loop": True,  # frames published before discovery completes are lost: keep sending
            "detector.model": str(DETECTOR),
        },
    )
    enough = lambda: all(len(listener.got[f"{n}/detections"]) >= 20 for n in names)  # noqa: E731
    assert ros_node.spin_until(enough, 90), ({k: len(v) for k, v in listener.got.items()}, proc.log()[-3000:])
    for name in names:
        msgs = listener.got[f"{name}/detections"]
        assert {m.header.frame_id for m in msgs} == {f"{name}_optical"}
        assert {m.header.frame_id for m in listener.got[f"{name}/tracks"]} == {f"{name}_optical"}
        # Every message is one of this camera's frames, detected as when the camera runs alone.
        found = [frame_of(m, singles[name]) for m in msgs if len(m.detections)]
        assert found and None not in found, (name, found)
        assert len(set(found)) >= 5, f"{name}: the clip's frames, not one frame over and over"
        stamps = [stamp_ns(m.header) for m in msgs]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    batch = listener.status("batch")
    assert batch is not None and "detector engine" in batch.message, listener.diag[-1:]
    assert proc.alive()


@pytest.mark.ros
@pytest.mark.slow
def test_a_camera_that_cannot_open_stalls_nobody(
    own_domain: str, ros_node: Any, start_node: Any, sample_data: Any, tmp_path: Path
) -> None:
    clip(sample_data.video, tmp_path / "front", 0, (1280, 720), count=8)
    listener = Listener(ros_node, ["front", "dead"])
    proc = start_node(
        "perception_pipeline",
        params_file=CONFIG / "perception_pipeline.yaml",
        params={
            "camera.sources": [str(tmp_path / "front"), "/dev/video97"],
            "camera_names": ["front", "dead"],
            "camera.rate_hz": 10.0,
            "camera.loop": True,
            "camera.reconnect_delay": 0.2,
            "camera.reconnect_attempts": 2,
            "detector.model": str(DETECTOR),
        },
    )
    front = listener.got["front/detections"]
    assert ros_node.spin_until(lambda: len(front) >= 5, 60), proc.log()[-3000:]
    # The failed camera is named, as an ERROR, on its own status and in the node's summary.
    failed = lambda: (s := listener.status("camera dead")) is not None and s.level == b"\x02"  # noqa: E731
    assert ros_node.spin_until(failed, 30), [s.name for m in listener.diag[-1:] for s in m.status]
    dead = listener.status("camera dead")
    assert dead.message.startswith("dead: failed"), dead.message
    summary = listener.status("perception_pipeline")
    assert summary is not None and summary.level == b"\x02"
    # The other camera goes on at its rate: about 10 frames/s over the next 3 s, none waiting on the dead one.
    before, t0 = len(front), time.monotonic()
    ros_node.spin_until(lambda: False, 3.0)
    rate = (len(front) - before) / (time.monotonic() - t0)
    assert rate >= 6.0, (rate, proc.log()[-2000:])
    ok = listener.status("camera front")
    assert ok is not None and ok.level == b"\x00" and ok.message.startswith("front: connected"), ok
    assert listener.got["dead/detections"] == []
    # A live detector parameter reaches the shared batched detector.
    assert set_params(ros_node, "perception_pipeline", **{"detector.conf_threshold": 0.999}).successful
    assert ros_node.spin_until(lambda: len(front[-1].detections) == 0, 10)
    # enabled false: the cameras are read, nothing goes out, and the drops are no fault of the camera.
    assert set_params(ros_node, "perception_pipeline", enabled=False).successful
    ros_node.spin_until(lambda: False, 0.5)
    before, dropped = len(front), _value(listener.status("camera front"), "dropped.total")
    ros_node.spin_until(lambda: False, 2.0)
    assert len(front) == before, "paused: nothing published"
    paused = listener.status("camera front")
    assert paused is not None and paused.level == b"\x00" and paused.message.endswith("(paused)"), paused
    assert _value(paused, "dropped.total") >= dropped + 5, "the camera is read, its frames counted"
    assert set_params(ros_node, "perception_pipeline", enabled=True).successful
    assert ros_node.spin_until(lambda: len(front) >= before + 5, 30), proc.log()[-2000:]
    # Deactivate stops every camera; activate opens them again, the dead one failing on its own.
    assert change_state(ros_node, "perception_pipeline", "deactivate")
    ros_node.spin_until(lambda: False, 0.5)
    before = len(front)
    ros_node.spin_until(lambda: False, 1.5)
    assert len(front) == before, "inactive: nothing published"
    assert change_state(ros_node, "perception_pipeline", "activate"), proc.log()[-2000:]
    assert ros_node.spin_until(lambda: len(front) >= before + 5, 30), proc.log()[-2000:]
    assert proc.alive()


@pytest.mark.ros
@pytest.mark.slow
def test_image_topics_of_two_drivers(
    own_domain: str, ros_node: Any, start_node: Any, sample_data: Any
) -> None:
    from sensor_msgs.msg import Image

    feeds = {
        name: [cv2.resize(f, size) for f in _video_frames(sample_data.video, start, 6)]
        for name, start, size in CLIPS
    }
    singles = {name: alone(frames) for name, frames in feeds.items()}
    names = list(feeds)
    listener = Listener(ros_node, names)
    pubs = {n: ros_node.create_publisher(Image, f"{n}/image_raw", reliable_qos(5)) for n in names}
    proc = start_node(
        "perception_pipeline",
        params_file=CONFIG / "perception_pipeline.yaml",
        params={
            "image_topics": [f"{n}/image_raw" for n in names],
            "camera_names": names,
            "detector.model": str(DETECTOR),
        },
    )
    assert ros_node.spin_until(lambda: all(p.get_subscription_count() for p in pubs.values()), 60), proc.log()
    sent: dict[str, dict[int, int]] = {n: {} for n in names}  # stamp -> frame

    def publish(name: str, k: int) -> None:
        frame = k % len(feeds[name])
        msg = numpy_to_image(feeds[name][frame], "bgr8")
        msg.header.frame_id = f"{name}_link"
        stamp = 1_700_000_000_000_000_000 + k * 100_000_000 + (names.index(name) + 1) * 1000
        set_time(msg.header.stamp, stamp)
        sent[name][stamp] = frame
        pubs[name].publish(msg)

    for k in range(40):
        for name in names:
            publish(name, k)
        ros_node.spin_until(lambda: False, 0.1)
        if all(len(listener.got[f"{n}/detections"]) >= 12 for n in names):
            break
    for name in names:
        msgs = listener.got[f"{name}/detections"]
        assert len(msgs) >= 12, ({k: len(v) for k, v in listener.got.items()}, proc.log()[-3000:])
        for m in msgs:  # the input's own header, and that very frame's detections
            assert m.header.frame_id == f"{name}_link"
            assert matches(m, singles[name][sent[name][stamp_ns(m.header)]])
    # rear stops: front is still answered, each frame within a batch timeout, and rear is named.
    front = listener.got["front/detections"]
    for k in range(40, 70):
        before = len(front)
        publish("front", k)
        ros_node.spin_until(lambda b=before: len(front) > b, 2.0)
    assert len(front) >= 12 + 25, len(front)
    rear_named = lambda: "no frame for" in getattr(listener.status("camera rear"), "message", "")  # noqa: E731
    assert ros_node.spin_until(rear_named, 10), listener.status("camera rear")
    assert proc.alive()


def _video_frames(video: Path, start: int, count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = [cap.read()[1] for _ in range(count)]
    cap.release()
    return frames


@pytest.mark.ros
@pytest.mark.slow
def test_a_fixed_batch_detector_is_a_configure_error(
    own_domain: str, start_node: Any, tmp_path: Path
) -> None:
    out = yolov8_output(np.array([[320, 320, 100, 50]]), np.array([0]), np.array([0.9]), nc=2)
    model = constant_model(tmp_path / "fixed.onnx", {"output0": out}, input_shape=(1, 3, 640, 640))
    proc = start_node(
        "perception_pipeline",
        params={
            "camera.sources": ["a.mp4", "b.mp4"],
            "detector.model": str(model),
            "plate_reader.enabled": False,
            "exit_on_error": True,
        },
    )
    assert proc.proc.wait(60) == 1, proc.log()
    log = proc.log()
    assert "detector.model for 2 cameras: fixed.onnx: 2 frames per call requested" in log, log


def test_the_example_config_sets_declared_parameters_for_one_setup() -> None:
    """config/multi_camera.yaml: only perception_pipeline's parameters, one name and frame_id per source."""
    values = yaml.safe_load((CONFIG / "multi_camera.yaml").read_text())["/**"]["ros__parameters"]
    declared = {p.name for p in PARAMETERS}
    assert set(values) <= declared, set(values) - declared
    assert (
        len(values["camera.sources"]) == len(values["camera_names"]) == len(values["camera_frame_ids"]) >= 2
    )


def _value(status: Any, key: str) -> int:
    return int({kv.key: kv.value for kv in status.values}[key])
