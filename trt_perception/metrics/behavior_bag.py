"""Read a driving run (or a perfect-lap reference) from a rosbag2 with ``rosbags`` (no ROS install).

Topics: ``nav_msgs/Odometry`` (pose, header stamp = simulated time), ``rosgraph_msgs/Clock``, the
brain's ``geometry_msgs/Twist`` or ``TwistStamped`` commands and ``/diagnostics`` (the pilot node's
per-iteration inference samples and frame counter, see ``BrainDiagnostics``). The bag's receive
timestamps stand for wall-clock arrival times.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .behavior import RunRecord

#: /diagnostics keys the pilot node publishes for the evaluator
INFERENCE_SAMPLES_KEY = "inference.samples_ms"
FRAMES_KEY = "frames.received"


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


def _reader(path: Path):  # type: ignore[no-untyped-def]
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    if not path.exists():
        raise FileNotFoundError(f"rosbag2 not found: {path}")
    return AnyReader([path], default_typestore=get_typestore(Stores.ROS2_HUMBLE))


def _stamp(header) -> float:  # type: ignore[no-untyped-def]
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def read_odometry_xy(path: str | Path, topic: str | None = None) -> np.ndarray:
    """x, y of every ``nav_msgs/Odometry`` on ``topic`` (or the bag's only odometry topic)."""
    path = Path(path)
    with _reader(path) as reader:
        conns = [c for c in reader.connections if c.msgtype == "nav_msgs/msg/Odometry"]
        if topic is not None:
            conns = [c for c in conns if c.topic == topic]
        if not conns:
            raise ValueError(f"{path}: no nav_msgs/Odometry{' on ' + topic if topic else ''} in the bag")
        xy = []
        for conn, _, raw in reader.messages(connections=conns[:1]):
            p = reader.deserialize(raw, conn.msgtype).pose.pose.position
            xy.append((p.x, p.y))
    if len(xy) < 3:
        raise ValueError(f"{path}: a reference lap needs at least 3 odometry messages, found {len(xy)}")
    return np.asarray(xy, np.float64)


def read_run(
    path: str | Path,
    odom_topic: str = "/odom",
    clock_topic: str = "/clock",
    cmd_topic: str = "/cmd_vel",
    diagnostics_topic: str = "/diagnostics",
) -> RunRecord:
    """A ``RunRecord`` from a recording; a truncated bag yields what could be read before the damage."""
    path = Path(path)
    odom_t, odom_w, xy = [], [], []
    clock_s, clock_w = [], []
    cmd_w, cmd = [], []
    brain = BrainDiagnostics()
    with _reader(path) as reader:
        wanted = {odom_topic, clock_topic, cmd_topic, diagnostics_topic}
        conns = [c for c in reader.connections if c.topic in wanted]
        if not any(c.topic == odom_topic for c in conns):
            topics = sorted({c.topic for c in reader.connections})
            raise ValueError(f"{path}: no '{odom_topic}' topic; the bag has {topics}")
        try:
            for conn, ts, raw in reader.messages(connections=conns):
                wall = ts * 1e-9
                msg = reader.deserialize(raw, conn.msgtype)
                if conn.topic == odom_topic:
                    p = msg.pose.pose.position
                    odom_t.append(_stamp(msg.header))
                    odom_w.append(wall)
                    xy.append((p.x, p.y))
                elif conn.topic == clock_topic:
                    clock_s.append(msg.clock.sec + msg.clock.nanosec * 1e-9)
                    clock_w.append(wall)
                elif conn.topic == cmd_topic:
                    twist = msg.twist if hasattr(msg, "twist") else msg
                    cmd_w.append(wall)
                    cmd.append((twist.linear.x, twist.angular.z))
                else:
                    for status in msg.status:
                        brain.add({kv.key: kv.value for kv in status.values}, wall)
        except Exception as exc:  # truncated or corrupt file: keep what was read, say so
            if not odom_t:
                raise ValueError(f"{path}: cannot read the bag ({type(exc).__name__}: {exc})") from exc
    frames, span = brain.frame_count_span()
    return RunRecord(
        odom_stamp=np.asarray(odom_t),
        odom_wall=np.asarray(odom_w),
        xy=np.asarray(xy, np.float64).reshape(-1, 2),
        clock_sim=np.asarray(clock_s),
        clock_wall=np.asarray(clock_w),
        cmd_wall=np.asarray(cmd_w),
        cmd=np.asarray(cmd, np.float64).reshape(-1, 2),
        inference_ms=np.asarray(brain.inference_ms),
        frames=frames,
        frames_wall_span=span,
    )
