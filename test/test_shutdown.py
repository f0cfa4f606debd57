"""Ctrl-C (and launch's SIGTERM) end a node with exit code 0 and no traceback, also while its capture
thread is publishing (rclpy's own SIGINT handler used to shut the context down under it: "RCLError:
Failed to publish: publisher's context is invalid"). Lifecycle nodes go through their shutdown
transition (the pilot's zero Twist included) on the way out."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from conftest import CONFIG, MODELS, SampleData

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _params(exe: str, video: str) -> dict[str, Any]:
    return {
        "detector": {"model": str(MODELS / "detector.onnx")},
        "camera_bridge": {"source": video, "loop": True},
        "perception_pipeline": {"camera.source": video, "camera.loop": True},
        "pilot": {},
        "segmentation": {},
    }[exe]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("exe", ["detector", "camera_bridge", "perception_pipeline", "pilot", "segmentation"])
def test_signal_ends_the_node_cleanly(
    exe: str, sig: int, start_node: Any, ros_node: Any, sample_data: SampleData
) -> None:
    from diagnostic_msgs.msg import DiagnosticArray

    seen: list[Any] = []
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", seen.append, 10)
    node = start_node(exe, params_file=CONFIG / f"{exe}.yaml", params=_params(exe, str(sample_data.video)))
    assert ros_node.spin_until(lambda: bool(seen), 60), node.log()
    ros_node.spin_until(lambda: False, 1.0)  # a camera publishing frames meanwhile
    node.proc.send_signal(sig)
    assert node.proc.wait(30) == 0, node.log()
    log = node.log()
    for bad in ("Traceback", "RCLError", "context is invalid", "Failed to publish"):
        assert bad not in log, log[-3000:]
