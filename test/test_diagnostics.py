"""DiagnosticsPublisher: statuses named by the node's fully qualified name, latency and input grouped,
levels from thresholds (latency, frame age, dropped input frames) and problems, real /diagnostics traffic."""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import CONFIG
from ros_domain import use_own_domain

from trt_perception.metrics.latency import END_TO_END, FRAME_AGE, INFERENCE, LatencyRecorder
from trt_perception.ros.diagnostics import ERROR, OK, WARN, DiagnosticsPublisher, threshold_level

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
def test_threshold_level(mean: float | None, warn: float, error: float, level: int) -> None:
    assert threshold_level(mean, warn, error) == level


def _by_task(diag: DiagnosticsPublisher) -> dict[str, Any]:
    return {s.name.split(": ", 1)[1]: s for s in diag.statuses()}


def test_latency_grouped_under_the_fully_qualified_name(ros_node: Any) -> None:
    rec = LatencyRecorder()
    diag = DiagnosticsPublisher(ros_node, rec, component="detector", hardware_id="jetson-1", period_s=0)
    assert diag.status().message == "waiting for input"
    assert [s.name for s in diag.statuses()] == [
        f"/{ros_node.get_name()}: detector",
        f"/{ros_node.get_name()}: latency",
    ]
    for ms in (4.0, 5.0, 6.0):
        rec.record(INFERENCE, ms)
        rec.record(END_TO_END, ms + 1)
    diag.set_value("model", "models/detector.onnx")
    statuses = _by_task(diag)
    status = statuses["detector"]
    assert status.name == f"{ros_node.get_fully_qualified_name()}: detector"
    assert status.hardware_id == "jetson-1"
    assert status.level == bytes([OK])
    assert _values(status) == {"model": "models/detector.onnx"}  # the figures live in their own groups
    assert "\n" not in status.message and "end_to_end 6.0 ms mean" in status.message
    values = _values(statuses["latency"])
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
    assert "input" not in statuses  # no frames, no input status


def test_namespaced_nodes_do_not_collide(ros_node: Any) -> None:
    import rclpy

    names = []
    for ns in ("front", "rear"):
        node = rclpy.create_node("detector", namespace=ns, context=ros_node.context)
        try:
            names += [
                s.name
                for s in DiagnosticsPublisher(node, LatencyRecorder(), "detector", period_s=0).statuses()
            ]
        finally:
            node.destroy_node()
    assert names == [
        "/front/detector: detector",
        "/front/detector: latency",
        "/rear/detector: detector",
        "/rear/detector: latency",
    ]


def test_a_pipeline_that_falls_behind_is_not_ok(ros_node: Any) -> None:
    # The case: a 12.7 Hz model on a 30 Hz camera with a deep queue (frame age 151 ms, 58% of
    # the frames never processed) showed OK.
    clock = _FakeClock()
    rec = LatencyRecorder(clock=clock)
    diag = DiagnosticsPublisher(
        ros_node, rec, "detector", period_s=0, frame_age_ms=(100.0, 1000.0), dropped=(0.2, 0.8), clock=clock
    )
    for i in range(30):
        rec.record(FRAME_AGE, 21.0, at=clock.t + i)
        rec.record(END_TO_END, 60.0, at=clock.t + i)
    assert diag.status().level == bytes([OK])
    assert _by_task(diag)["input"].message == "frame age 21 ms mean, 0% of input frames dropped (0 of 30)"
    for i in range(30):
        rec.record(FRAME_AGE, 151.0, at=clock.t + 30 + i)
        rec.record_dropped(1, at=clock.t + 30 + i)
    inp = _by_task(diag)["input"]
    assert inp.level == bytes([WARN])
    assert "frame age 86 ms mean" in inp.message and "33% of input frames dropped (30 of 90)" in inp.message
    assert "falls behind" in inp.message
    summary = diag.status()
    assert summary.level == bytes([WARN]) and "falls behind" in summary.message
    assert _values(inp)["dropped.ratio"] == "0.333" and _values(inp)["dropped.total"] == "30"
    rec.record_dropped(1000, at=clock.t + 60)
    assert diag.status().level == bytes([ERROR])


def test_thresholds_and_problems_set_the_level(ros_node: Any) -> None:
    rec = LatencyRecorder()
    diag = DiagnosticsPublisher(ros_node, rec, period_s=0, warn_ms=10, error_ms=50)
    rec.record(END_TO_END, 20.0)
    assert diag.status().level == bytes([WARN])
    diag.report("camera", ERROR, "camera lost", ttl_s=None)
    status = diag.status()
    assert status.level == bytes([ERROR]) and status.message.startswith("camera: camera lost")
    assert _values(status)["problem.camera"] == "ERROR: camera lost"
    assert _by_task(diag)["latency"].level == bytes([WARN])
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
    status = {s.name: s for s in received[-1].status}
    fqn = ros_node.get_fully_qualified_name()
    assert set(status) == {f"{fqn}: probe", f"{fqn}: latency"}
    assert _values(status[f"{fqn}: latency"])["end_to_end.mean_ms"] == "3.000"


def test_a_new_problem_is_published_at_once(ros_node: Any) -> None:
    from diagnostic_msgs.msg import DiagnosticArray

    received: list[Any] = []
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", received.append, 10)
    diag = DiagnosticsPublisher(ros_node, LatencyRecorder(), component="probe", period_s=3600)
    ros_node.spin_until(lambda: ros_node.count_publishers("/diagnostics") > 0, 30)
    diag.report("camera", ERROR, "cannot open camera 0")
    assert ros_node.spin_until(lambda: bool(received), timeout=30)  # not an hour later
    assert received[0].status[0].message == "camera: cannot open camera 0"


def test_qos_overrides_apply_to_the_diagnostics_publisher(ros_node: Any) -> None:
    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.qos import ReliabilityPolicy

    node = rclpy.create_node(
        "diag_qos",
        context=ros_node.context,
        parameter_overrides=[
            Parameter("qos_overrides./diagnostics.publisher.reliability", value="best_effort"),
            Parameter("qos_overrides./diagnostics.publisher.depth", value=3),
        ],
    )
    try:
        DiagnosticsPublisher(node, LatencyRecorder(), component="probe", period_s=0)
        assert node.get_parameter("qos_overrides./diagnostics.publisher.depth").value == 3

        def offered() -> list[Any]:
            infos = ros_node.get_publishers_info_by_topic("/diagnostics")
            return [i.qos_profile.reliability for i in infos if i.node_name == "diag_qos"]

        assert ros_node.spin_until(lambda: bool(offered()), timeout=30)
        assert offered() == [ReliabilityPolicy.BEST_EFFORT]  # the default is RELIABLE
    finally:
        node.destroy_node()


@pytest.fixture
def own_domain(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    return use_own_domain(request, monkeypatch)


@pytest.mark.slow
def test_namespaced_node_processes_publish_apart(own_domain: str, start_node: Any, ros_node: Any) -> None:
    from diagnostic_msgs.msg import DiagnosticArray

    names: set[str] = set()
    ros_node.create_subscription(
        DiagnosticArray, "/diagnostics", lambda m: names.update(s.name for s in m.status), 50
    )
    wanted = {f"/{ns}/detector: {task}" for ns in ("front", "rear") for task in ("detector", "latency")}
    for ns in ("front", "rear"):
        start_node("detector", params_file=CONFIG / "detector.yaml", remap={"__ns": f"/{ns}"})
    assert ros_node.spin_until(lambda: wanted <= names, 60), names
