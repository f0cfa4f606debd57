"""DiagnosticsPublisher: latency values, levels from thresholds and problems, real /diagnostics traffic."""

from __future__ import annotations

import time
from typing import Any

import pytest

from trt_perception.metrics.latency import END_TO_END, INFERENCE, LatencyRecorder
from trt_perception.ros.diagnostics import ERROR, OK, WARN, DiagnosticsPublisher, latency_level

pytestmark = pytest.mark.ros


def _values(status: Any) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


@pytest.mark.parametrize(
    ("mean", "warn", "error", "level"),
    [
        (None, 10, 20, OK),
        (5, 10, 20, OK),
        (10, 10, 20, WARN),
        (25, 10, 20, ERROR),
        (99, 0, 0, OK),
        (25, 0, 20, ERROR),
    ],
)
def test_latency_level(mean: float | None, warn: float, error: float, level: int) -> None:
    assert latency_level(mean, warn, error) == level


def test_status_carries_every_latency_field(ros_node: Any) -> None:
    rec = LatencyRecorder()
    diag = DiagnosticsPublisher(ros_node, rec, component="detector", hardware_id="jetson-1", period_s=0)
    assert diag.status().message == "waiting for input"
    for ms in (4.0, 5.0, 6.0):
        rec.record(INFERENCE, ms)
        rec.record(END_TO_END, ms + 1)
    diag.set_value("model", "models/detector.onnx")
    status = diag.status()
    assert status.name == f"{ros_node.get_name()}: detector"
    assert status.hardware_id == "jetson-1"
    assert status.level == bytes([OK])
    values = _values(status)
    for stage in (INFERENCE, END_TO_END):
        for stat in (
            "count",
            "mean_ms",
            "std_ms",
            "min_ms",
            "max_ms",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "rate_hz",
        ):
            assert f"{stage}.{stat}" in values
    assert values["inference.mean_ms"] == "5.000"
    assert values["model"] == "models/detector.onnx"
    assert "end_to_end 6.0 ms mean" in status.message


def test_thresholds_and_problems_set_the_level(ros_node: Any) -> None:
    rec = LatencyRecorder()
    diag = DiagnosticsPublisher(ros_node, rec, period_s=0, warn_ms=10, error_ms=50)
    rec.record(END_TO_END, 20.0)
    assert diag.status().level == bytes([WARN])
    diag.report("camera", ERROR, "camera lost", ttl_s=None)
    status = diag.status()
    assert status.level == bytes([ERROR]) and status.message.startswith("camera: camera lost")
    diag.clear("camera")
    assert diag.status().level == bytes([WARN])


class _FakeClock:
    """A monotonic clock the test advances by hand, so TTLs are checked without racing the scheduler."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_problem_expires_after_its_ttl(ros_node: Any) -> None:
    clock = _FakeClock()
    diag = DiagnosticsPublisher(ros_node, LatencyRecorder(), period_s=0, clock=clock)
    diag.report("image", WARN, "bad encoding", ttl_s=0.2)
    assert diag.status().level == bytes([WARN])
    clock.t += 0.19
    assert diag.status().level == bytes([WARN])  # still within its TTL
    diag.report("image", WARN, "bad encoding", ttl_s=0.2)  # a new report restarts the TTL
    clock.t += 0.19
    assert diag.status().level == bytes([WARN])
    clock.t += 0.02
    assert diag.status().level == bytes([OK])  # 0.21 s after the last report: expired
    diag.report("camera", ERROR, "camera lost", ttl_s=None)
    clock.t += 1e6
    assert diag.status().level == bytes([ERROR])  # no TTL: stays until cleared


def test_problem_expires_on_the_real_clock(ros_node: Any) -> None:
    # The default clock is wired: the problem goes away on its own. Polled with a generous deadline
    # rather than one fixed sleep, so a descheduled test process cannot fail it.
    diag = DiagnosticsPublisher(ros_node, LatencyRecorder(), period_s=0)
    reported = time.monotonic()  # taken before report(), so the elapsed check below cannot race
    diag.report("image", WARN, "bad encoding", ttl_s=0.2)
    deadline = reported + 30
    while diag.status().level != bytes([OK]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert diag.status().level == bytes([OK])
    assert time.monotonic() - reported >= 0.2  # not before its TTL


def test_published_on_diagnostics_topic(ros_node: Any) -> None:
    from diagnostic_msgs.msg import DiagnosticArray

    received: list[Any] = []
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", received.append, 10)
    rec = LatencyRecorder()
    rec.record(END_TO_END, 3.0)
    DiagnosticsPublisher(ros_node, rec, component="probe", period_s=0.1)
    assert ros_node.spin_until(lambda: bool(received), timeout=60)
    status = received[-1].status[0]
    assert status.name.endswith(": probe")
    assert _values(status)["end_to_end.mean_ms"] == "3.000"
