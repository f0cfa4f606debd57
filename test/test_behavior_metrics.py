"""Behavior metrics against hand-computed values on constructed trajectories (ROS-free)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trt_perception.metrics.behavior import (
    RunRecord,
    clean_odometry,
    distances_to_path,
    evaluate_run,
    path_length,
    percentage_completed,
    position_deviation,
    suddenness,
    trimmed_mean,
)
from trt_perception.metrics.behavior_run import BrainDiagnostics, format_samples, read_run


def circle(
    radius: float, n: int, start: float = 0.0, end: float = 2 * math.pi, endpoint: bool = False
) -> np.ndarray:
    a = np.linspace(start, end, n, endpoint=endpoint)
    return np.stack([radius * np.cos(a), radius * np.sin(a)], axis=1)


def run_on(xy: np.ndarray, seconds: float, **kw: object) -> RunRecord:
    t = np.linspace(0.0, seconds, len(xy))
    defaults: dict[str, object] = {"clock_sim": t, "clock_wall": t / 2.0}  # real-time factor 2
    defaults.update(kw)
    return RunRecord(odom_stamp=t, odom_wall=t / 2.0, xy=xy, **defaults)  # type: ignore[arg-type]


def test_offset_of_half_a_metre_gives_half_a_metre_deviation() -> None:
    reference = circle(20.0, 2000)
    driven = circle(20.5, 5000, endpoint=True)
    dev = position_deviation(reference, driven)
    assert dev.mean_m == pytest.approx(0.5, abs=1e-4)
    assert dev.max_m == pytest.approx(0.5, abs=1e-4)
    # BehaviorMetrics' score is mean(1000**d): 1000**0.5, not metres
    assert dev.bm_score == pytest.approx(1000**0.5, rel=1e-3)
    assert dev.bm_total == pytest.approx(2000 * 1000**0.5, rel=1e-3)


def test_deviation_uses_segments_not_only_vertices() -> None:
    # a straight path sampled every 10 m; a checkpoint 0.5 m beside the middle of a segment
    path = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    d = distances_to_path(np.array([[5.0, 0.5], [15.0, -0.5], [-3.0, 4.0]]), path)
    np.testing.assert_allclose(d, [0.5, 0.5, 5.0], atol=1e-9)


def test_half_lap_is_fifty_percent() -> None:
    # 100 checkpoints 6.28 m apart (more than the 5 m radius): reaching checkpoint 49 from 0 passes
    # 50 of them (the start counts, as in BehaviorMetrics) -> exactly 50 %
    reference = circle(100.0, 100)
    step = 2 * math.pi / 100
    driven = circle(100.0, 4901, 0.0, 49 * step, endpoint=True)
    c = percentage_completed(driven, reference)
    assert c.percentage == pytest.approx(50.0)
    assert c.reached == 50 and c.direction == 1 and not c.lap_completed
    # driving the other way round is found by the second direction
    back = circle(100.0, 4901, 0.0, -49 * step, endpoint=True)
    c2 = percentage_completed(back, reference)
    assert c2.percentage == pytest.approx(50.0) and c2.direction == -1


def test_full_lap_time_and_average_speed() -> None:
    radius, omega = 100.0, 0.1  # 10 m/s
    reference = circle(radius, 100)
    t = np.linspace(0.0, 70.0, 7001)  # 7 rad: a bit more than one lap
    driven = np.stack([radius * np.cos(omega * t), radius * np.sin(omega * t)], axis=1)
    report = evaluate_run(run_on(driven, 70.0), reference)
    assert report.lap_completed and report.percentage_completed >= 100.0
    # the 100th checkpoint (index 99) counts once the car is within 5 m of it
    within = 2 * math.asin(2.5 / radius)
    expected_lap = (99 * 2 * math.pi / 100 - within) / omega
    assert report.lap_time_s == pytest.approx(expected_lap, abs=0.02)
    assert report.completed_distance_m == pytest.approx(radius * 7.0, rel=1e-4)
    assert report.average_speed_mps == pytest.approx(10.0, rel=1e-4)
    assert report.real_time_factor == pytest.approx(2.0)
    assert report.position_deviation_mean_m < 0.01
    assert report.time_base == "sim" and not report.warnings


def test_lap_counted_early_is_not_charged_for_the_undriven_stretch() -> None:
    # the checkpoint walk completes the lap up to 5 m before the start; the run ends 3 m before it
    radius = 50.0
    reference = circle(radius, 1000)
    end = 2 * math.pi - 3.0 / radius
    driven = circle(radius + 0.2, 3000, 0.0, end, endpoint=True)
    report = evaluate_run(run_on(driven, 40.0), reference)
    assert report.lap_completed
    assert report.position_deviation_max_m == pytest.approx(0.2, abs=0.01)
    assert report.progress_m == pytest.approx(2 * math.pi * radius - 3.0, abs=0.5)


def test_missing_clock_reports_real_time_only() -> None:
    reference = circle(50.0, 200)
    driven = circle(50.0, 500, 0.0, math.pi, endpoint=True)
    run = run_on(driven, 20.0, clock_sim=np.zeros(0), clock_wall=np.zeros(0))
    report = evaluate_run(run, reference)
    assert report.time_base == "real"
    assert report.experiment_sim_time_s is None and report.real_time_factor is None
    assert report.brain_iteration_frequency_sim_hz is None
    assert report.experiment_real_time_s == pytest.approx(10.0)
    assert report.average_speed_mps == pytest.approx(50 * math.pi / 10.0, rel=1e-3)
    assert any("clock" in w for w in report.warnings)
    assert json.dumps(report.as_dict())  # JSON-clean: no NaN, no numpy types


def test_out_of_order_and_duplicate_odometry_give_the_clean_numbers() -> None:
    reference = circle(50.0, 300)
    driven = circle(50.3, 3000, 0.0, 1.5 * math.pi, endpoint=True)
    clean = evaluate_run(run_on(driven, 60.0), reference)
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 60.0, len(driven))
    order = np.arange(len(driven))
    for i in rng.choice(len(driven) - 1, 40, replace=False):  # swap neighbours: late arrivals
        order[i], order[i + 1] = order[i + 1], order[i]
    dup = rng.choice(len(driven), 25, replace=False)  # resent messages
    idx = np.concatenate([order, dup])
    messy = RunRecord(odom_stamp=t[idx], odom_wall=t[idx] / 2, xy=driven[idx], clock_sim=t, clock_wall=t / 2)
    report = evaluate_run(messy, reference)
    assert report.odometry_duplicates == 25 and report.odometry_out_of_order > 0
    for key in (
        "completed_distance_m",
        "percentage_completed",
        "position_deviation_mean_m",
        "average_speed_mps",
    ):
        assert getattr(report, key) == pytest.approx(getattr(clean, key)), key


def test_clean_odometry_keeps_last_of_equal_stamps() -> None:
    s, xy, ooo, dups = clean_odometry(
        np.array([2.0, 1.0, 1.0, 3.0]), np.array([[2, 0], [1, 0], [1, 5], [3, 0]])
    )
    np.testing.assert_array_equal(s, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(xy[0], [1, 5])
    assert (ooo, dups) == (1, 1)


def test_timing_metrics() -> None:
    assert trimmed_mean([100.0] * 10 + [1.0] * 30 + [100.0] * 10) == 1.0
    assert trimmed_mean([3.0, 5.0]) == 4.0  # too few samples to trim
    assert suddenness(np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0]])) == pytest.approx(2.5)
    assert path_length(np.array([[0, 0], [3, 4], [3, 10]])) == pytest.approx(11.0)
    reference = circle(50.0, 200)
    driven = circle(50.0, 1000, 0.0, math.pi, endpoint=True)
    cmd_wall = np.arange(100) * 0.1  # 100 commands over 9.9 s wall
    run = run_on(
        driven,
        20.0,
        cmd_wall=cmd_wall,
        cmd=np.zeros((100, 2)),
        inference_ms=np.full(100, 2.0),
        frames=300,
        frames_wall_span=10.0,
    )
    r = evaluate_run(run, reference)
    assert r.brain_iterations == 100
    assert r.brain_iteration_frequency_real_hz == pytest.approx(100 / 9.9)
    assert r.brain_iteration_frequency_sim_hz == pytest.approx(100 / 20.0)
    assert r.mean_inference_time_ms == pytest.approx(2.0)
    assert r.frame_rate_hz == pytest.approx(30.0)


def test_brain_diagnostics_neither_double_nor_lose_samples() -> None:
    b = BrainDiagnostics()
    b.add({"inference.samples_ms": format_samples(0, [1.0, 2.0]), "frames.received": "2"}, 0.0)
    b.add(
        {"inference.samples_ms": format_samples(0, [1.0, 2.0, 3.0]), "frames.received": "3"}, 1.0
    )  # overlap
    b.add({"inference.samples_ms": format_samples(0, [1.0, 2.0, 3.0]), "frames.received": "3"}, 1.5)  # repeat
    b.add({"inference.samples_ms": format_samples(2, [3.0, 4.0, 5.0]), "frames.received": "6"}, 2.0)
    assert b.inference_ms == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert b.frame_count_span() == (4, 2.0)
    assert not b.add({"other": "x"}, 3.0)


def test_deviation_is_fast_for_100k_poses() -> None:
    reference = circle(60.0, 10_000)
    driven = circle(60.4, 100_000, endpoint=True)
    position_deviation(reference, driven)  # warm-up
    # CPU time, not wall time: a test process descheduled on a loaded machine does not count.
    t0 = time.process_time()
    dev = position_deviation(reference, driven)
    elapsed = time.process_time() - t0
    assert dev.mean_m == pytest.approx(0.4, abs=1e-3)
    # bench_behavior holds the 100 ms target (12 ms measured); this bound is 20x that target and only
    # guards against a gross regression (an O(N*M) pairwise distance, 10^9 pairs, takes seconds).
    assert elapsed < 2.0


def _odometry(ts: Any, x: float, y: float, stamp: Any, child_frame_id: str, **header: Any) -> Any:
    """A nav_msgs/Odometry at (x, y) with zero twist, in the message types of ``ts`` (ROS 1 or ROS 2)."""
    t = ts.types
    Vector3, Twist = t["geometry_msgs/msg/Vector3"], t["geometry_msgs/msg/Twist"]
    Point, Quat = t["geometry_msgs/msg/Point"], t["geometry_msgs/msg/Quaternion"]
    zero3 = Vector3(x=0.0, y=0.0, z=0.0)
    pose = t["geometry_msgs/msg/Pose"](
        position=Point(x=x, y=y, z=0.0), orientation=Quat(x=0.0, y=0.0, z=0.0, w=1.0)
    )
    return t["nav_msgs/msg/Odometry"](
        header=t["std_msgs/msg/Header"](stamp=stamp, frame_id="odom", **header),
        child_frame_id=child_frame_id,
        pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
        twist=t["geometry_msgs/msg/TwistWithCovariance"](
            twist=Twist(linear=zero3, angular=zero3), covariance=np.zeros(36)
        ),
    )


def _write_bag(path: Path, clock: bool = True) -> np.ndarray:
    """A small rosbag2 of a drive round a 30 m circle: odometry 20 Hz, /clock, cmd_vel, diagnostics."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    Odometry, Header, Time = (
        ts.types["nav_msgs/msg/Odometry"],
        ts.types["std_msgs/msg/Header"],
        ts.types["builtin_interfaces/msg/Time"],
    )
    Twist, Vector3 = ts.types["geometry_msgs/msg/Twist"], ts.types["geometry_msgs/msg/Vector3"]
    Clock = ts.types["rosgraph_msgs/msg/Clock"]
    DiagArray, DiagStatus, KeyValue = (
        ts.types["diagnostic_msgs/msg/DiagnosticArray"], ts.types["diagnostic_msgs/msg/DiagnosticStatus"], ts.types["diagnostic_msgs/msg/KeyValue"],
    )  # fmt: skip
    n, radius, period = 400, 30.0, 20.0  # 20 s of simulated time, recorded over 10 s of wall time
    a = np.linspace(0, 2 * math.pi * 1.05, n)
    xy = np.stack([radius * np.cos(a), radius * np.sin(a)], axis=1)
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        c_odom = w.add_connection("/odom", Odometry.__msgtype__, typestore=ts)
        c_clock = w.add_connection("/clock", Clock.__msgtype__, typestore=ts)
        c_cmd = w.add_connection("/cmd_vel", Twist.__msgtype__, typestore=ts)
        c_diag = w.add_connection("/diagnostics", DiagArray.__msgtype__, typestore=ts)
        for i in range(n):
            sim = i * period / n
            sec, nsec = divmod(round(sim * 1e9), 1_000_000_000)
            wall_ns = 1_000_000_000_000 + int(sim / 2 * 1e9)
            stamp = Time(sec=sec, nanosec=nsec)
            odom = _odometry(ts, xy[i, 0], xy[i, 1], stamp, "base_link")
            w.write(c_odom, wall_ns, ts.serialize_cdr(odom, Odometry.__msgtype__))
            if clock:
                w.write(c_clock, wall_ns, ts.serialize_cdr(Clock(clock=stamp), Clock.__msgtype__))
            cmd = Twist(linear=Vector3(x=10.0, y=0.0, z=0.0), angular=Vector3(x=0.0, y=0.0, z=1 / 3))
            w.write(c_cmd, wall_ns + 1000, ts.serialize_cdr(cmd, Twist.__msgtype__))
            if i % 20 == 19:
                values = [
                    KeyValue(key="inference.samples_ms", value=format_samples(i - 19, [1.5] * 20)),
                    KeyValue(key="frames.received", value=str(i + 1)),
                ]
                status = DiagStatus(level=0, name="pilot: pilot", message="", hardware_id="", values=values)
                arr = DiagArray(header=Header(stamp=stamp, frame_id=""), status=[status])
                w.write(c_diag, wall_ns + 2000, ts.serialize_cdr(arr, DiagArray.__msgtype__))
    return xy


def test_offline_command_gives_the_same_numbers(tmp_path: Path) -> None:
    from trt_perception.cli import main

    xy = _write_bag(tmp_path / "drive")
    reference = circle(30.5, 400)  # 0.5 m outside the driven circle
    ref_csv = tmp_path / "ref.csv"
    np.savetxt(ref_csv, reference, delimiter=",", header="x,y", comments="")
    out = tmp_path / "out"
    assert (
        main(
            [
                "behavior",
                "--bag",
                str(tmp_path / "drive"),
                "--reference",
                str(ref_csv),
                "--out",
                str(out),
                "--prefix",
                "r",
            ]
        )
        == 0
    )
    data = json.loads((out / "r.json").read_text())
    expected = evaluate_run(read_run(tmp_path / "drive"), reference).as_dict()
    for key, value in expected.items():
        if isinstance(value, float):
            assert data[key] == pytest.approx(value), key
    assert data["lap_completed"] and data["time_base"] == "sim"
    assert data["position_deviation_mean_m"] == pytest.approx(0.5, abs=0.01)
    assert data["completed_distance_m"] == pytest.approx(path_length(xy))
    assert data["real_time_factor"] == pytest.approx(2.0, rel=0.01)
    assert data["mean_inference_time_ms"] == pytest.approx(1.5)
    assert data["brain_iterations"] == 400
    for suffix in (".csv", ".png", "_trajectory.csv"):
        assert (out / f"r{suffix}").stat().st_size > 0


@pytest.mark.ros
def test_node_and_command_score_one_drive_identically(tmp_path: Path) -> None:
    """The live node (its callbacks fed the bag's messages at the bag's receive times) and the offline
    command share one RunRecorder: start at the first command, pending start pose, same numbers."""
    import rclpy
    from rclpy.parameter import Parameter

    from trt_perception.cli import main
    from trt_perception.io.bags import Bag
    from trt_perception.nodes.behavior_evaluator import BehaviorEvaluatorNode

    _write_bag(tmp_path / "drive")
    ref_csv = tmp_path / "ref.csv"
    np.savetxt(ref_csv, circle(30.5, 400), delimiter=",", header="x,y", comments="")
    out = tmp_path / "out"
    args = ["behavior", "--bag", str(tmp_path / "drive"), "--reference", str(ref_csv)]
    assert main([*args, "--out", str(out), "--prefix", "cli"]) == 0
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        params = {"reference": str(ref_csv), "output_dir": str(out), "output_prefix": "node"}
        node = BehaviorEvaluatorNode(
            context=context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]
        )
        now = [0.0]
        node.wall_clock = lambda: now[0]
        feed = {"/odom": node.on_odom, "/clock": node.on_clock, "/cmd_vel": node.on_cmd}
        feed["/diagnostics"] = node.on_diag
        with Bag(tmp_path / "drive") as bag:
            for m, msg in bag.decoded(list(feed)):
                now[0] = m.timestamp_ns * 1e-9
                feed[m.topic](msg)
        node.end_run("end of the recording")
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    live, offline = (json.loads((out / f"{k}.json").read_text()) for k in ("node", "cli"))
    report_keys = evaluate_run(read_run(tmp_path / "drive"), circle(30.5, 400)).as_dict()
    assert {k: live[k] for k in report_keys} == {k: offline[k] for k in report_keys}
    assert live["brain_iterations"] == 400 and live["lap_completed"]


def test_offline_command_without_clock_and_with_a_bag_reference(tmp_path: Path) -> None:
    from trt_perception.cli import main

    _write_bag(tmp_path / "drive", clock=False)
    out = tmp_path / "out"
    # the drive itself as the reference (a perfect-lap bag of odometry, like BehaviorMetrics')
    args = [
        "behavior",
        "--bag",
        str(tmp_path / "drive"),
        "--reference",
        str(tmp_path / "drive"),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    data = json.loads(next(out.glob("*.json")).read_text())
    assert data["time_base"] == "real" and data["real_time_factor"] is None
    assert data["position_deviation_mean_m"] == pytest.approx(0.0, abs=1e-6)
    assert main(["behavior", "--bag", str(tmp_path / "missing"), "--reference", "simple"]) == 2


@pytest.mark.ros
def test_evaluator_node_without_clock_and_with_messy_odometry(start_node, ros_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """No /clock: WARN and real-time numbers; late and repeated odometry: sorted, dropped; report at shutdown."""
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry

    from trt_perception.ros.qos import reliable_qos

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "out"
    node = start_node(
        "behavior_evaluator",
        params_file=root / "config" / "behavior_evaluator.yaml",
        params={
            "reference": "simple",
            "output_dir": str(out),
            "output_prefix": "run",
            "diagnostics_period": 0.5,
            "no_clock_warn_s": 0.5,
        },
    )
    statuses: list = []  # type: ignore[type-arg]
    ros_node.create_subscription(
        DiagnosticArray,
        "/diagnostics",
        lambda m: statuses.extend(s for s in m.status if s.name.startswith("/behavior_evaluator:")),
        10,
    )
    odom_pub = ros_node.create_publisher(Odometry, "odom", reliable_qos(200))
    cmd_pub = ros_node.create_publisher(Twist, "cmd_vel", reliable_qos(10))
    assert ros_node.spin_until(
        lambda: odom_pub.get_subscription_count() > 0 and cmd_pub.get_subscription_count() > 0, 60
    )  # deadlines: generous, they only cost time on a failure
    from trt_perception.sim.circuits import get_circuit

    line = get_circuit("simple").centerline
    order = list(range(0, 400, 4))
    order[10], order[11] = order[11], order[10]  # one late message
    order.insert(20, order[19])  # one repeated message
    cmd = Twist()
    cmd.linear.x = 5.0
    cmd_pub.publish(cmd)  # the experiment starts at the first command: let it arrive before odometry
    ros_node.spin_until(lambda: False, 0.5)
    for k, i in enumerate(order):
        msg = Odometry()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(i * 10_000_000, 1_000_000_000)
        msg.pose.pose.position.x, msg.pose.pose.position.y = float(line[i, 0]), float(line[i, 1])
        if k % 5 == 0:
            cmd_pub.publish(cmd)
        odom_pub.publish(msg)
        ros_node.spin_until(lambda: False, 0.01)
    assert ros_node.spin_until(
        lambda: any(s.level == b"\x01" and "/clock" in s.message for s in statuses), 60
    ), node.log()
    assert node.alive()
    node.stop(timeout=60)  # the report is written at shutdown: give a loaded machine time for it
    data = json.loads((out / "run.json").read_text())
    assert data["time_base"] == "real" and data["real_time_factor"] is None
    assert data["odometry_duplicates"] >= 1 and data["odometry_out_of_order"] >= 1
    assert data["position_deviation_mean_m"] < 0.05
    assert data["completed_distance_m"] == pytest.approx(396 * 0.25, rel=0.02)
    assert data["finished"] == "shutdown"


def test_reference_from_a_ros1_perfect_lap_bag(tmp_path: Path) -> None:
    """BehaviorMetrics ships its perfect laps as ROS 1 bags of /F1ROS/odom: they load as references."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    from trt_perception.sim.circuits import load_reference

    ts = get_typestore(Stores.ROS1_NOETIC)
    Odometry, Time = ts.types["nav_msgs/msg/Odometry"], ts.types["builtin_interfaces/msg/Time"]
    lap = circle(40.0, 300)
    path = tmp_path / "perfect_lap.bag"
    with Writer(path) as w:
        conn = w.add_connection("/F1ROS/odom", Odometry.__msgtype__, typestore=ts)
        for i, (x, y) in enumerate(lap):
            msg = _odometry(ts, x, y, Time(sec=i, nanosec=0), "", seq=i)
            w.write(conn, (i + 1) * 1_000_000, ts.serialize_ros1(msg, Odometry.__msgtype__))
    np.testing.assert_allclose(load_reference(str(path), "/F1ROS/odom"), lap)
    with pytest.raises(ValueError, match="no nav_msgs/Odometry on /odom"):
        load_reference(str(path), "/odom")
