"""Images from any publisher: the image subscription takes its publishers' reliability, so a RELIABLE
720p publisher on plain Fast DDS defaults (any camera driver without the shipped profile) is answered
frame for frame; a publisher the node cannot match is named on /diagnostics."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from conftest import CONFIG, ROOT
from rclpy.qos import ReliabilityPolicy

from trt_perception.ros.image_subscription import choose_reliability
from trt_perception.ros.qos import reliable_qos

_TRANSPORT_VARS = (
    "FASTDDS_DEFAULT_PROFILES_FILE",
    "FASTRTPS_DEFAULT_PROFILES_FILE",
    "FASTDDS_BUILTIN_TRANSPORTS",
)
R, B = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT


def test_choose_reliability_like_rosbag2() -> None:
    assert choose_reliability([]) == B
    assert choose_reliability([R]) == R and choose_reliability([R, R]) == R
    assert choose_reliability([R, B]) == B and choose_reliability([B]) == B


def _publisher(reliability: str, count: int, rate: float, env: dict[str, str]) -> subprocess.Popen[bytes]:
    base = {k: v for k, v in os.environ.items() if k not in _TRANSPORT_VARS}
    return subprocess.Popen(
        [sys.executable, "-m", "bench.image_peer", "pub", "--width", "1280", "--height", "720",
         "--reliability", reliability, "--rate", str(rate), "--count", str(count), "--wait", "60",
         "--settle", "1.0", "--linger", "3.0", "--topic", "camera/image_raw"],
        cwd=ROOT, env={**base, **env},
    )  # fmt: skip


@pytest.mark.ros
@pytest.mark.slow
def test_reliable_publisher_on_fastdds_defaults_is_answered(start_node: Any, ros_node: Any) -> None:
    from vision_msgs.msg import Detection2DArray

    answered: set[str] = set()
    ros_node.create_subscription(
        Detection2DArray, "detections", lambda m: answered.add(m.header.frame_id), reliable_qos(100)
    )
    # A queue deep enough that a loaded machine's inference never drops a frame: what is checked is
    # transport loss (a best-effort subscription answered 26 of 300 such frames); bench_qos measures
    # frames answered at 30 Hz with the default depth 1.
    node = start_node("detector", params_file=CONFIG / "detector.yaml", params={"qos_depth": 40})
    pub = _publisher("reliable", 40, 10.0, env={})
    try:
        assert pub.wait(120) == 0
        ros_node.spin_until(lambda: len(answered) >= 40, 30)
    finally:
        pub.kill()
    assert len(answered) >= 39, (len(answered), node.log()[-3000:])


@pytest.mark.ros
@pytest.mark.slow
def test_publisher_on_a_transport_the_node_lacks_is_explained(start_node: Any, ros_node: Any) -> None:
    from diagnostic_msgs.msg import DiagnosticArray

    statuses: list[Any] = []
    ros_node.create_subscription(
        DiagnosticArray, "/diagnostics", lambda m: statuses.extend(m.status), reliable_qos(50)
    )
    node = start_node(
        "detector",
        params_file=CONFIG / "detector.yaml",
        params={"diagnostics_period": 0.3, "no_data_timeout": 1.0},
    )
    # LARGE_DATA participants are not discovered by default or profile ones: the node cannot name the
    # publisher, so it says that none is discovered and what can cause it.
    pub = _publisher("best_effort", 300, 10.0, env={"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"})
    try:
        ok = ros_node.spin_until(
            lambda: any(
                "no publisher discovered" in s.message and "LARGE_DATA" in s.message for s in statuses
            ),
            30,
        )
    finally:
        pub.kill()
        pub.wait(10)
    assert ok, ([s.message for s in statuses[-3:]], node.log()[-2000:])


@pytest.mark.ros
def test_destroy_removes_subscriptions_and_timer(ros_node: Any) -> None:
    from sensor_msgs.msg import Image

    from trt_perception.ros.image_subscription import AdaptiveSubscription

    subs_before, timers_before = len(list(ros_node.subscriptions)), len(list(ros_node.timers))
    sub = AdaptiveSubscription(ros_node, Image, "camera/image_raw", lambda m: None)
    assert len(list(ros_node.subscriptions)) == subs_before + 1
    assert len(list(ros_node.timers)) == timers_before + 1
    sub.destroy()
    assert len(list(ros_node.subscriptions)) == subs_before
    assert len(list(ros_node.timers)) == timers_before
