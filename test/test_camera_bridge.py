"""camera_bridge as its own process over Fast DDS (the shipped profile), started with config/camera_bridge.yaml."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import CONFIG
from mjpeg_server import MjpegServer

from trt_perception.io.images import image_to_numpy
from trt_perception.ros.diagnostics import ERROR, OK, WARN
from trt_perception.ros.qos import sensor_qos

pytestmark = [pytest.mark.ros, pytest.mark.slow]

PARAMS_FILE = CONFIG / "camera_bridge.yaml"
STATUS_NAME = "/camera_bridge: camera"


def _frame(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8)


@pytest.fixture
def png_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(8):
        cv2.imwrite(str(folder / f"{i:03d}.png"), _frame(i))
    return folder


class Listener:
    """Images, camera infos and camera_bridge statuses seen by the test's own rclpy node."""

    def __init__(self, node: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import CameraInfo, Image

        self.node = node
        self.images: list[Any] = []
        self.infos: list[Any] = []
        self.statuses: list[Any] = []
        self.latency: dict[str, str] = {}  # the node's 'latency' group
        node.create_subscription(Image, "camera/image_raw", self.images.append, sensor_qos(50))
        node.create_subscription(CameraInfo, "camera/camera_info", self.infos.append, sensor_qos(50))
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)

    def _on_diag(self, msg: Any) -> None:
        self.statuses += [s for s in msg.status if s.name == STATUS_NAME]
        for s in msg.status:
            if s.name == "/camera_bridge: latency":
                self.latency.update({kv.key: kv.value for kv in s.values})

    def wait(self, condition: Any, timeout: float, proc: Any = None) -> bool:
        ok = self.node.spin_until(condition, timeout)
        if not ok and proc is not None:
            print(proc.log()[-3000:])
        return ok

    def status_level(self) -> int:
        return self.statuses[-1].level[0] if self.statuses else -1

    def values(self) -> dict[str, str]:
        return {kv.key: kv.value for kv in self.statuses[-1].values}


def _stamp_ns(msg: Any) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def test_png_folder_frames_arrive_pixel_exact_in_order(
    start_node: Any, ros_node: Any, png_folder: Path
) -> None:
    listener = Listener(ros_node)
    proc = start_node(
        "camera_bridge",
        params_file=PARAMS_FILE,
        params={"source": str(png_folder), "frame_id": "test_cam", "rate_hz": 20.0, "loop": True},
    )
    assert listener.wait(lambda: len(listener.images) >= 20, 30, proc), "no images from camera_bridge"
    frames = [_frame(i) for i in range(8)]
    indices = []
    for msg in listener.images[:20]:
        assert (msg.encoding, msg.width, msg.height, msg.header.frame_id) == ("bgr8", 64, 48, "test_cam")
        pixels = image_to_numpy(msg)
        matches = [i for i, f in enumerate(frames) if np.array_equal(pixels, f)]
        assert len(matches) == 1, "a published frame is not pixel-exact to any PNG of the folder"
        indices.append(matches[0])
    # In folder order, looping: each frame follows its predecessor (no frame lost or reordered).
    assert all((b - a) % 8 == 1 for a, b in itertools.pairwise(indices)), indices
    stamps = [_stamp_ns(m) for m in listener.images[:20]]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    # /diagnostics carries the latency of capture -> publish and the source's counters.
    assert listener.wait(
        lambda: bool(listener.statuses) and int(listener.values().get("frames_published", 0)) >= 20, 60, proc
    )
    values = {**listener.values(), **listener.latency}
    for key in (
        "end_to_end.mean_ms",
        "end_to_end.p95_ms",
        "end_to_end.rate_hz",
        "convert.mean_ms",
        "publish.mean_ms",
    ):
        assert key in values
    assert float(values["end_to_end.mean_ms"]) < 100.0
    assert values["source_state"] == "connected"
    assert values["frames_dropped"] == "0"
    assert listener.status_level() == OK
    assert proc.alive()


def test_video_delivers_expected_count(start_node: Any, ros_node: Any, tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48))
    for i in range(45):
        writer.write(np.full((48, 64, 3), (i * 5) % 256, np.uint8))
    writer.release()
    listener = Listener(ros_node)
    proc = start_node(
        "camera_bridge", params_file=PARAMS_FILE, params={"source": str(path), "wait_for_subscriber": True}
    )
    assert listener.wait(lambda: len(listener.images) >= 45, 30, proc)
    ros_node.spin_until(lambda: False, 0.5)  # nothing more may come: the file has ended
    assert len(listener.images) == 45
    assert listener.wait(
        lambda: listener.values().get("source_state") == "finished" if listener.statuses else False, 60
    )
    assert listener.status_level() == OK
    assert proc.alive()


def test_encoding_resize_and_camera_info(
    start_node: Any, ros_node: Any, png_folder: Path, tmp_path: Path
) -> None:
    calibration = tmp_path / "camera.yaml"
    calibration.write_text(
        "image_width: 64\nimage_height: 48\ncamera_name: test\n"
        "camera_matrix: {rows: 3, cols: 3, data: [50, 0, 32, 0, 50, 24, 0, 0, 1]}\n"
        "distortion_model: plumb_bob\n"
        "distortion_coefficients: {rows: 1, cols: 5, data: [0.1, -0.05, 0, 0, 0]}\n"
        "rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}\n"
        "projection_matrix: {rows: 3, cols: 4, data: [50, 0, 32, 0, 0, 50, 24, 0, 0, 0, 1, 0]}\n"
    )
    listener = Listener(ros_node)
    proc = start_node(
        "camera_bridge",
        params_file=PARAMS_FILE,
        params={
            "source": str(png_folder),
            "encoding": "rgb8",
            "width": 128,
            "loop": True,
            "rate_hz": 20.0,
            "calibration_file": str(calibration),
        },
    )
    assert listener.wait(lambda: len(listener.images) >= 3 and len(listener.infos) >= 3, 30, proc)
    msg = listener.images[1]
    assert (msg.encoding, msg.width, msg.height, msg.step) == ("rgb8", 128, 96, 128 * 3)
    rgb = image_to_numpy(msg)
    expected = [cv2.cvtColor(cv2.resize(_frame(i), (128, 96)), cv2.COLOR_BGR2RGB) for i in range(8)]
    assert any(np.abs(rgb.astype(int) - e.astype(int)).max() <= 1 for e in expected)
    by_stamp = {_stamp_ns(i): i for i in listener.infos}
    info = by_stamp[_stamp_ns(msg)]  # camera info shares the image's header
    assert (info.width, info.height, info.distortion_model) == (128, 96, "plumb_bob")
    np.testing.assert_allclose(info.k, [100, 0, 64, 0, 100, 48, 0, 0, 1])
    np.testing.assert_allclose(info.d, [0.1, -0.05, 0, 0, 0])
    assert info.header.frame_id == "camera"


def test_network_camera_vanishes_warns_and_recovers(start_node: Any, ros_node: Any) -> None:
    server = MjpegServer(fps=20).start()
    try:
        listener = Listener(ros_node)
        proc = start_node(
            "camera_bridge",
            params_file=PARAMS_FILE,
            params={
                "source": server.url,
                "reconnect_delay": 0.2,
                "reconnect_max_delay": 1.0,
                "diagnostics_period": 0.3,
            },
        )
        assert listener.wait(lambda: len(listener.images) >= 5, 30, proc)
        server.stop()
        assert listener.wait(lambda: listener.status_level() == WARN, 60, proc), (
            "no WARN after the camera vanished"
        )
        status = listener.statuses[-1]
        assert "source" in status.message and listener.values()["source_state"] == "reconnecting"
        seen = len(listener.images)
        server.start()
        assert listener.wait(lambda: len(listener.images) >= seen + 5, 30, proc), (
            "no frames after the camera returned"
        )
        assert listener.wait(lambda: listener.status_level() == OK, 60, proc)
        assert int(listener.values()["reconnects"]) >= 1
        assert proc.alive()
        # The source's own line per change of state in the ROS log, at its severity; its status goes to
        # /diagnostics only (no "source: ..." line repeated every few seconds while it reconnects).
        log = proc.log()
        assert "[WARN]" in _line(log, f"'{server.url}': reconnecting: ") and "[INFO]" in _line(
            log, f"'{server.url}': connected: "
        ), log
        assert "]: source: " not in log, log
    finally:
        server.stop()


def _line(log: str, text: str) -> str:
    """The first line of ``log`` that holds ``text`` (empty when none does)."""
    return next((line for line in log.splitlines() if text in line), "")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"source": "/nonexistent/video.mp4"}, "video file '/nonexistent/video.mp4' not found"),
        ({"source": "{folder}", "encoding": "bayer_rggb8"}, "unknown output encoding 'bayer_rggb8'"),
        (
            {"source": "{folder}", "calibration_file": "/nonexistent/cam.yaml"},
            "calibration file '/nonexistent/cam.yaml' not found",
        ),
    ],
)
def test_bad_parameters_give_one_error_and_error_status(
    start_node: Any, ros_node: Any, png_folder: Path, params: dict, expected: str
) -> None:
    params = {k: v.format(folder=png_folder) if isinstance(v, str) else v for k, v in params.items()}
    listener = Listener(ros_node)
    proc = start_node("camera_bridge", params_file=PARAMS_FILE, params={**params, "diagnostics_period": 0.3})
    assert listener.wait(lambda: listener.status_level() == ERROR, 60, proc)
    assert expected in listener.statuses[-1].message
    time.sleep(1.0)
    assert proc.alive(), "camera_bridge exited on a bad parameter (a launch respawn would crash-loop)"
    log = proc.log()
    assert log.count(expected) == 1, log
    assert "Traceback" not in log
    assert not listener.images


def test_publisher_qos_from_the_standard_overrides(start_node: Any, ros_node: Any, png_folder: Path) -> None:
    """``qos_overrides./camera/image_raw.publisher.*`` (rclpy's QoSOverridingOptions) instead of
    bespoke reliability / depth parameters: the default is best effort, keep last 5."""
    from rclpy.qos import ReliabilityPolicy

    proc = start_node(
        "camera_bridge",
        params_file=PARAMS_FILE,
        params={
            "source": str(png_folder),
            "loop": True,
            "qos_overrides./camera/image_raw.publisher.reliability": "reliable",
            "qos_overrides./camera/image_raw.publisher.depth": 3,
        },
    )

    def publisher_qos() -> Any:
        infos = ros_node.get_publishers_info_by_topic("/camera/image_raw")
        return infos[0].qos_profile if infos else None

    assert ros_node.spin_until(lambda: publisher_qos() is not None, 30), proc.log()
    assert publisher_qos().reliability == ReliabilityPolicy.RELIABLE
    assert publisher_qos().depth == 3 or publisher_qos().depth == 0  # depth is not always in discovery data
    # Discovered a moment after the image publisher on a loaded machine.
    assert ros_node.spin_until(lambda: bool(ros_node.get_publishers_info_by_topic("/camera/camera_info")), 30)
    info = ros_node.get_publishers_info_by_topic("/camera/camera_info")
    assert info[0].qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT  # its own override


def test_enabled_false_reads_the_camera_and_publishes_nothing(
    start_node: Any, ros_node: Any, png_folder: Path
) -> None:
    """Paused: the source stays open and is read, its frames counted as dropped; true resumes."""
    from ros_clients import set_params

    listener = Listener(ros_node)
    proc = start_node(
        "camera_bridge",
        params_file=PARAMS_FILE,
        params={"source": str(png_folder), "loop": True, "rate_hz": 20.0, "diagnostics_period": 0.2},
    )
    assert listener.wait(lambda: len(listener.images) >= 3, 30, proc)
    assert set_params(ros_node, "camera_bridge", enabled=False).successful
    ros_node.spin_until(lambda: False, 0.5)  # a frame under way arrives
    seen, captured = len(listener.images), int(listener.values()["frames_captured"])
    assert listener.wait(lambda: int(listener.values()["frames_captured"]) >= captured + 10, 30, proc)
    assert len(listener.images) == seen and listener.values()["source_state"] == "connected"
    summary = listener.statuses[-1]
    assert summary.message.startswith("paused (enabled: false)") and listener.status_level() == OK
    assert set_params(ros_node, "camera_bridge", enabled=True).successful
    assert listener.wait(lambda: len(listener.images) >= seen + 3, 30, proc)
