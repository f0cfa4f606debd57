"""Problems are logged once per key and throttle period, a change of severity never raises from the
logger, and the two crashes it caused (a folder camera whose images vanish; a detector without a model
whose no-data watchdog fires) leave the node alive with an ERROR status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import rclpy.logging
from conftest import CONFIG

from trt_perception.ros.diagnostics import ERROR, WARN
from trt_perception.ros.problem_log import ProblemLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_problem_key_and_throttle_period() -> None:
    clock = Clock()
    log = ProblemLog(rclpy.logging.get_logger("problem_log_test"), clock)
    # Five different bad encodings each get their line; their repeats within the period do not.
    assert all(log(f"input:{enc}", WARN, f"unsupported encoding {enc}") for enc in "abcde")
    assert not any(log(f"input:{enc}", WARN, f"unsupported encoding {enc}") for enc in "abcde")
    clock.now += 4.9
    assert not log("input:a", WARN, "again", throttle_s=5.0)
    clock.now += 0.2
    assert log("input:a", WARN, "again", throttle_s=5.0)


def test_severity_change_of_one_problem_logs_at_once_and_never_raises() -> None:
    # rclpy's logger raises "Logger severity cannot be changed between calls" when one call site logs
    # WARN and then ERROR; the real logger is used here.
    clock = Clock()
    log = ProblemLog(rclpy.logging.get_logger("problem_log_severity"), clock)
    for _ in range(3):
        assert log("source", WARN, "reconnecting")
        assert log("source", ERROR, "gave up")
        clock.now += 10.0


def test_a_failing_logger_does_not_raise() -> None:
    class Broken:
        def warning(self, _: str) -> None:
            raise ValueError("Logger severity cannot be changed between calls.")

        error = warning

    assert ProblemLog(Broken())("k", WARN, "text")


class Statuses:
    def __init__(self, node: Any, name: str) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self.seen: list[Any] = []
        node.create_subscription(
            DiagnosticArray,
            "/diagnostics",
            lambda m: self.seen.extend(s for s in m.status if s.name == name),
            50,
        )

    def has(self, level: int, text: str) -> bool:
        return any(s.level[0] == level and text in s.message for s in self.seen)


@pytest.mark.ros
def test_folder_camera_whose_images_vanish_stays_up_with_error(
    start_node: Any, ros_node: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((48, 64, 3), i * 40, np.uint8))
    statuses = Statuses(ros_node, "/camera_bridge: camera")
    proc = start_node(
        "camera_bridge",
        params_file=CONFIG / "camera_bridge.yaml",
        params={
            "source": str(folder),
            "loop": True,
            "rate_hz": 20.0,
            "reconnect_delay": 0.1,
            "reconnect_max_delay": 0.3,
            "reconnect_attempts": 3,
            "diagnostics_period": 0.2,
        },
    )
    assert ros_node.spin_until(lambda: bool(statuses.seen), 30), proc.log()
    for f in folder.iterdir():
        f.unlink()
    # WARN while it retries, then ERROR when it gives up: the severity change that used to kill it.
    assert ros_node.spin_until(lambda: statuses.has(ERROR, "source"), 60), proc.log()
    assert ros_node.spin_until(lambda: len(statuses.seen) > 10, 30)
    assert proc.alive(), proc.log()
    assert "Traceback" not in proc.log() and "severity cannot be changed" not in proc.log()


@pytest.mark.ros
def test_unconfigured_detector_keeps_its_error_and_subscribes_nothing(
    start_node: Any, ros_node: Any, tmp_path: Path
) -> None:
    """A detector whose configure failed stays up (exit_on_error off): its ERROR naming the cause never
    expires, and an unconfigured node takes no images (nothing to drop, no watchdog to fire)."""
    from sensor_msgs.msg import Image

    statuses = Statuses(ros_node, "/detector: detector")
    proc = start_node(
        "detector",
        params_file=CONFIG / "detector.yaml",
        params={"model": str(tmp_path / "missing.onnx"), "diagnostics_period": 0.2, "no_data_timeout": 0.5},
    )
    pub = ros_node.create_publisher(Image, "camera/image_raw", 10)
    assert ros_node.spin_until(lambda: statuses.has(ERROR, "missing.onnx"), 30), proc.log()
    seen = len(statuses.seen)
    assert ros_node.spin_until(lambda: len(statuses.seen) > seen + 10, 30)
    assert all(s.level[0] == ERROR and "missing.onnx" in s.message for s in statuses.seen[seen:])
    assert pub.get_subscription_count() == 0
    assert proc.alive(), proc.log()
    assert "Traceback" not in proc.log() and "severity cannot be changed" not in proc.log()
