"""One driving run, recorded the same way live (``behavior_evaluator`` node) and offline
(``trt-perception behavior`` on a rosbag2), so one drive scores one way.

``RunRecorder`` takes messages (rclpy or rosbags objects alike: only fields are read) with their
wall-clock arrival time: ``nav_msgs/Odometry`` (pose, header stamp = simulated time),
``rosgraph_msgs/Clock``, the brain's ``geometry_msgs/Twist`` or ``TwistStamped`` commands and
``/diagnostics`` (the pilot node's per-iteration inference samples and frame counter, see
``BrainDiagnostics``). The experiment starts at the brain's first command (the latest pose before
it is the start pose), unless ``start_on_first_cmd`` is off. ``read_run`` feeds a bag's messages,
with their receive timestamps standing for wall-clock arrival times.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io.bags import Bag, BagReadError
from ..io.stamps import stamp_s, time_s
from .behavior import BehaviorReport, RunRecord

#: /diagnostics keys the pilot node publishes for the evaluator
INFERENCE_SAMPLES_KEY = "inference.samples_ms"
FRAMES_KEY = "frames.received"
#: BehaviorMetrics counts the last checkpoints up to 5 m early, so a lap counts once progress and
#: completion both reach it, less this fraction (a float sum over the lap falls a hair short).
LAP_TOLERANCE = 0.002


def format_samples(first_index: int, samples: list[float]) -> str:
    """``"<index of the first sample>: s0 s1 ..."``, the value of ``INFERENCE_SAMPLES_KEY``."""
    return f"{first_index}: " + " ".join(f"{s:.3f}" for s in samples)


def parse_samples(text: str) -> tuple[int, list[float]]:
    head, _, body = text.partition(":")
    return int(head), [float(x) for x in body.split()]


@dataclass
class BrainDiagnostics:
    """Accumulates the pilot's diagnostics: inference samples (ms) and the frame counter over time.

    The pilot re-sends its newest samples every period with the index of the first one; only
    samples past ``next_index`` are taken, so repeated or dropped messages neither double nor
    (within the pilot's 1000-sample window) lose any.
    """

    inference_ms: list[float] = field(default_factory=list)
    frames: list[tuple[float, int]] = field(default_factory=list)
    next_index: int = 0

    def add(self, values: dict[str, str], wall_s: float) -> bool:
        """Take one DiagnosticStatus's key-values; False when it is not a brain's status."""
        if INFERENCE_SAMPLES_KEY not in values:
            return False
        try:
            first, samples = parse_samples(values[INFERENCE_SAMPLES_KEY])
        except ValueError:
            return False
        skip = max(self.next_index - first, 0)
        self.inference_ms.extend(samples[skip:])
        self.next_index = max(self.next_index, first + len(samples))
        if FRAMES_KEY in values:
            with contextlib.suppress(ValueError):
                self.frames.append((wall_s, int(values[FRAMES_KEY])))
        return True

    def frame_count_span(self) -> tuple[int, float]:
        if len(self.frames) < 2:
            return 0, 0.0
        (t0, n0), (t1, n1) = self.frames[0], self.frames[-1]
        return n1 - n0, t1 - t0


class RunRecorder:
    """Thread-safe: ROS callbacks (live) or a bag loop (offline) feed it; ``record()`` snapshots it."""

    def __init__(self, start_on_first_cmd: bool = True) -> None:
        self._lock = threading.Lock()
        self._odom: list[tuple[float, float, float, float]] = []  # stamp, wall, x, y
        self._pending_odom: tuple[float, float, float, float] | None = None
        self._clock: list[tuple[float, float]] = []
        self._cmd: list[tuple[float, float, float]] = []
        self._brain = BrainDiagnostics()
        self.started = not start_on_first_cmd
        self.start_wall: float | None = None
        self.finished = False

    def odometry(self, msg: Any, wall: float) -> None:
        pos = msg.pose.pose.position
        sample = (stamp_s(msg.header), wall, float(pos.x), float(pos.y))
        with self._lock:
            if self.finished:
                return
            if self.started:
                self._odom.append(sample)
            else:
                self._pending_odom = sample  # the latest pose before the start is the start pose

    def clock(self, msg: Any, wall: float) -> None:
        with self._lock:
            if self.started and not self.finished:
                self._clock.append((time_s(msg.clock), wall))

    def command(self, msg: Any, wall: float) -> None:
        twist = msg.twist if hasattr(msg, "twist") else msg  # TwistStamped or Twist
        with self._lock:
            if self.finished:
                return
            if not self.started or self.start_wall is None:
                self.started, self.start_wall = True, wall
                if self._pending_odom is not None:
                    self._odom.append(self._pending_odom)
                    self._pending_odom = None
            self._cmd.append((wall, float(twist.linear.x), float(twist.angular.z)))

    def diagnostics(self, msg: Any, wall: float) -> None:
        with self._lock:
            if self.started and not self.finished:
                for status in msg.status:
                    self._brain.add({kv.key: kv.value for kv in status.values}, wall)

    def finish(self) -> bool:
        """Stop taking messages; False when it was already finished."""
        with self._lock:
            was, self.finished = self.finished, True
        return not was

    def record(self) -> RunRecord:
        with self._lock:
            odom = np.asarray(self._odom, np.float64).reshape(-1, 4)
            clock = np.asarray(self._clock, np.float64).reshape(-1, 2)
            cmd = np.asarray(self._cmd, np.float64).reshape(-1, 3)
            inference = np.asarray(self._brain.inference_ms)
            frames, span = self._brain.frame_count_span()
        return RunRecord(
            odom_stamp=odom[:, 0], odom_wall=odom[:, 1], xy=odom[:, 2:4],
            clock_sim=clock[:, 0], clock_wall=clock[:, 1],
            cmd_wall=cmd[:, 0], cmd=cmd[:, 1:3],
            inference_ms=inference, frames=frames, frames_wall_span=span,
        )  # fmt: skip


def laps_done(report: BehaviorReport) -> float:
    """Laps driven: the lesser of checkpoint completion and distance along the reference."""
    return min(report.percentage_completed / 100.0, report.progress_m / max(report.reference_length_m, 1e-9))


def lap_target_reached(report: BehaviorReport, laps: int) -> bool:
    return laps > 0 and laps_done(report) >= laps - LAP_TOLERANCE


def read_run(
    path: str | Path,
    odom_topic: str = "/odom",
    clock_topic: str = "/clock",
    cmd_topic: str = "/cmd_vel",
    diagnostics_topic: str = "/diagnostics",
    start_on_first_cmd: bool = True,
) -> RunRecord:
    """A ``RunRecord`` from a recording; a truncated bag yields what could be read before the damage."""
    recorder = RunRecorder(start_on_first_cmd)
    feed = {
        odom_topic: recorder.odometry,
        clock_topic: recorder.clock,
        cmd_topic: recorder.command,
        diagnostics_topic: recorder.diagnostics,
    }
    odometry = 0
    with Bag(path) as bag:
        bag.require(odom_topic)
        try:
            for m, msg in bag.decoded([t for t in feed if t in bag.info.topics]):
                feed[m.topic](msg, m.timestamp_ns * 1e-9)
                odometry += m.topic == odom_topic
        except BagReadError:  # truncated or corrupt file: keep what was read
            if not odometry:
                raise
    return recorder.record()
