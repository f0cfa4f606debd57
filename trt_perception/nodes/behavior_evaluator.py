"""``behavior_evaluator`` node: BehaviorMetrics-style driving metrics, live and as a report.

Inputs: ``nav_msgs/Odometry`` on ``odom``, ``rosgraph_msgs/Clock`` on ``/clock``, the brain's
``geometry_msgs/Twist`` on ``cmd_vel`` and its ``/diagnostics`` (inference samples, frame counter), and a
reference lap (a built-in circuit name, an ``x,y`` CSV, or a rosbag2 of odometry like BehaviorMetrics'
perfect-lap bags). Every ``diagnostics_period`` the metrics so far go to ``/diagnostics``; at lap
completion, at the timeout or at shutdown it writes ``<prefix>.json``, ``<prefix>.csv``,
``<prefix>_trajectory.csv`` and ``<prefix>.png`` (trajectory over the reference) to ``output_dir``.
Formulas: ``trt_perception/metrics/behavior.py``. Without ``/clock`` it reports real time only (WARN);
out-of-order and duplicate odometry are sorted and dropped.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rosgraph_msgs.msg import Clock

from ..metrics.behavior import BehaviorReport, evaluate_run
from ..metrics.behavior_report import write_outputs
from ..metrics.behavior_run import RunRecorder, lap_target_reached
from ..ros.diagnostics import OK, WARN
from ..ros.files import resolve_file
from ..ros.node_base import PerceptionNode, run_node
from ..ros.params import Param
from ..ros.qos import reliable_qos
from ..sim.circuits import load_reference

PARAMETERS: tuple[Param, ...] = (
    Param(
        "reference",
        "simple",
        "Reference lap: circuit name (simple | montreal), x,y CSV file, or rosbag2 of odometry.",
    ),
    Param(
        "reference_topic",
        "",
        "Odometry topic inside a reference rosbag2; empty takes its only odometry topic.",
    ),
    Param("circuit_name", "", "Name used in the report; empty uses the reference's name."),
    Param("odom_topic", "odom", "nav_msgs/Odometry input."),
    Param("clock_topic", "/clock", "rosgraph_msgs/Clock input (simulated time)."),
    Param("cmd_vel_topic", "cmd_vel", "The brain's geometry_msgs/Twist commands."),
    Param("brain_diagnostics_topic", "/diagnostics", "Where the brain publishes its inference samples."),
    Param(
        "checkpoint_radius",
        5.0,
        "A reference checkpoint counts as passed within this distance (m), as BehaviorMetrics.",
    ),
    Param("laps", 1, "Finish after this many laps (0: only at timeout or shutdown)."),
    Param(
        "timeout_s",
        0.0,
        "Experiment time limit in simulated seconds (wall without /clock); 0: reference length / 2 m/s.",
    ),
    Param(
        "start_on_first_cmd", True, "Start the experiment at the brain's first command (not while it loads)."
    ),
    Param(
        "no_clock_warn_s",
        3.0,
        "Wall seconds of odometry without /clock before warning that only real time is reported.",
    ),
    Param("output_dir", "behavior_results", "Folder for the JSON, CSV and PNG reports."),
    Param("output_prefix", "", "File name prefix; empty: behavior_<circuit>_<date-time>."),
    Param("exit_on_finish", False, "Shut the node down after writing the report (for scripted runs)."),
)


class BehaviorEvaluatorNode(PerceptionNode):
    PARAMETERS = PARAMETERS
    COMPONENT = "behavior_evaluator"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("behavior_evaluator", **kwargs)
        p = self.params
        self.reference: np.ndarray | None = None
        spec = str(p["reference"])
        self.circuit_name = str(p["circuit_name"]) or Path(spec).stem
        try:
            self.reference = load_reference(resolve_file(spec), str(p["reference_topic"]) or None)
            self.get_logger().info(f"reference '{spec}': {len(self.reference)} checkpoints")
        except (OSError, ValueError) as exc:
            self.startup_error("reference", f"cannot load the reference lap: {exc}")
        self.radius = float(p["checkpoint_radius"])
        self.laps = int(p["laps"])
        timeout = float(p["timeout_s"])
        if timeout <= 0 and self.reference is not None:
            closed = np.vstack([self.reference, self.reference[:1]])
            timeout = float(np.linalg.norm(np.diff(closed, axis=0), axis=1).sum()) / 2.0
        self.timeout = timeout
        #: wall-clock arrival time of a message (a test replays a recording's receive times)
        self.wall_clock: Callable[[], float] = time.time
        self.recorder = RunRecorder(bool(p["start_on_first_cmd"]))
        self._created_wall = time.time()
        self._last_report: BehaviorReport | None = None
        self.create_subscription(
            Odometry, str(p["odom_topic"]), self.guarded("odom", self.on_odom), reliable_qos(200)
        )
        self.create_subscription(
            Clock, str(p["clock_topic"]), self.guarded("clock", self.on_clock), reliable_qos(50)
        )
        self.create_subscription(
            Twist, str(p["cmd_vel_topic"]), self.guarded("cmd_vel", self.on_cmd), reliable_qos(50)
        )
        self.create_subscription(
            DiagnosticArray,
            str(p["brain_diagnostics_topic"]),
            self.guarded("diagnostics", self.on_diag),
            reliable_qos(50),
        )
        period = float(p["diagnostics_period"])
        self.create_timer(period if period > 0 else 1.0, self.guarded("evaluate", self.evaluate))

    # -- inputs: the recorder (shared with the offline command) decides what counts
    def on_odom(self, msg: Odometry) -> None:
        self.recorder.odometry(msg, self.wall_clock())

    def on_clock(self, msg: Clock) -> None:
        self.recorder.clock(msg, self.wall_clock())

    def on_cmd(self, msg: Twist) -> None:
        self.recorder.command(msg, self.wall_clock())

    def on_diag(self, msg: DiagnosticArray) -> None:
        self.recorder.diagnostics(msg, self.wall_clock())

    # -- metrics
    def evaluate(self) -> None:
        if self.reference is None or self.recorder.finished:
            return
        run = self.recorder.record()
        if len(run.xy) < 2:
            self.diagnostics.report(
                "waiting", OK, "waiting for the brain's first command and odometry", ttl_s=2.0
            )
            return
        start = self.recorder.start_wall or self._created_wall
        no_clock = len(run.clock_sim) < 2 and self.wall_clock() - start > float(
            self.params["no_clock_warn_s"]
        )
        if no_clock:
            self.warn_input("clock", "no /clock received: reporting real (wall) time only", level=WARN)
        report = evaluate_run(run, self.reference, self.radius)
        self._last_report = report
        d = self.diagnostics
        for key in (
            "percentage_completed", "progress_m", "completed_distance_m", "average_speed_mps", "position_deviation_mean_m",
            "position_deviation_max_m", "position_deviation_bm_score", "brain_iteration_frequency_real_hz",
            "brain_iteration_frequency_sim_hz", "mean_inference_time_ms", "real_time_factor", "frame_rate_hz",
            "suddenness", "lap_completed", "lap_time_s", "time_base",
        ):  # fmt: skip
            value = getattr(report, key)
            d.set_value(key, "n/a" if value is None else value)
        elapsed = report.experiment_sim_time_s if report.time_base == "sim" else report.experiment_real_time_s
        if lap_target_reached(report, self.laps):
            self.end_run("lap completed")
        elif self.timeout > 0 and elapsed is not None and elapsed >= self.timeout:
            self.end_run(f"timeout after {elapsed:.0f} s")

    def end_run(self, reason: str) -> None:
        """Write the reports once (lap, timeout or shutdown)."""
        if self.reference is None or not self.recorder.finish():
            return
        run = self.recorder.record()
        if len(run.xy) < 2:
            self.get_logger().warning(f"{reason}: no driving recorded, no report written")
            return
        report = evaluate_run(run, self.reference, self.radius)
        p = self.params
        prefix = str(p["output_prefix"]) or f"behavior_{self.circuit_name}_{datetime.now():%Y%m%d-%H%M%S}"
        extra = {"circuit": self.circuit_name, "reference": str(p["reference"]), "finished": reason}
        paths = write_outputs(
            report, run.xy, self.reference, str(p["output_dir"]), prefix, extra, run.odom_stamp
        )
        self.get_logger().info(
            f"{reason}: {report.percentage_completed:.1f}% completed, deviation {report.position_deviation_mean_m:.2f} m, "
            f"avg speed {report.average_speed_mps:.2f} m/s -> {paths['json']}"
        )
        self.diagnostics.set_value("report", str(paths["json"]))
        if bool(p["exit_on_finish"]):
            raise SystemExit(0)

    def on_shutdown(self) -> None:
        with contextlib.suppress(SystemExit):
            self.end_run("shutdown")


def main(args: list[str] | None = None) -> int:
    return run_node(BehaviorEvaluatorNode, args)
