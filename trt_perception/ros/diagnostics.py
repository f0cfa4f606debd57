"""Turn a LatencyRecorder (and a node's problems) into ``diagnostic_msgs/DiagnosticArray``.

Named the way diagnostic_updater names tasks with ``use_fqn`` (``<fully qualified node name>: <task>``),
so ``/front/detector`` and ``/rear/detector`` never collide and diagnostic_aggregator analyzers can
match a node by its ``startswith`` prefix. Each node publishes a few short statuses instead of one with
every figure, so rqt_runtime_monitor stays readable:

- ``<fqn>: <component>``: the node's overall level (the worst of everything below) with a one-line
  message; its problems (``problem.<key>``) and the node's own values (model, backend...) as values.
- ``<fqn>: latency``: ``<stage>.<stat>`` for every processing stage (``inference.mean_ms``,
  ``end_to_end.p95_ms``...); WARN/ERROR from ``latency_warn_ms`` / ``latency_error_ms``.
- ``<fqn>: input`` (nodes that take frames): frame age statistics, dropped input frames (sent by the
  publisher, never processed here: see ``LatencyRecorder.drops``) and the subscriptions' own values
  (reliability, DDS-lost messages); WARN/ERROR from the frame-age and dropped-frame thresholds, so a
  pipeline that falls behind its camera is not OK.
- a node's own statuses from ``add_status_source`` (one per camera of a multi-camera pipeline), whose
  levels count in the summary's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import QoSProfile

from ..metrics.latency import END_TO_END, FRAME_AGE, LatencyRecorder
from .params import Param
from .qos import overridable_publisher

# Levels as ints for comparison; the message field itself is a one-byte ``bytes``.
OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = ("OK", "WARN", "ERROR", "STALE")

#: Every node's diagnostics parameters (``DiagnosticsPublisher.from_params`` reads them).
DIAGNOSTICS_PARAMETERS: tuple[Param, ...] = (
    Param("diagnostics_period", 1.0, "Seconds between /diagnostics messages (0 disables them)."),
    Param("latency_warn_ms", 0.0, "End-to-end mean latency (ms) that turns the status WARN; 0 disables."),
    Param("latency_error_ms", 0.0, "End-to-end mean latency (ms) that turns the status ERROR; 0 disables."),
    Param(
        "frame_age_warn_ms",
        100.0,
        "Mean input frame age (ms, image stamp to arrival in the node) that turns the status WARN: "
        "frames wait in a queue or the clocks disagree; 0 disables.",
    ),
    Param("frame_age_error_ms", 1000.0, "Mean input frame age (ms) that turns the status ERROR; 0 disables."),
    Param(
        "dropped_frames_warn",
        0.2,
        "Share of input frames sent but never processed (lost in transport, overwritten in the queue "
        "while the node was busy, or skipped) over the frame-age window that turns the status WARN: the "
        "node falls behind its publisher; 0 disables.",
        range=(0.0, 1.0),
    ),
    Param(
        "dropped_frames_error",
        0.8,
        "Share of input frames dropped that turns the status ERROR; 0 disables.",
        range=(0.0, 1.0),
    ),
    Param("hardware_id", "", "diagnostic_msgs hardware_id; empty uses the node's fully qualified name."),
)

_STATS = ("count", "mean_ms", "std_ms", "min_ms", "max_ms", "p50_ms", "p95_ms", "p99_ms", "rate_hz")
#: Fewer frames than this in the window are too few to call a drop ratio (the first frame after a
#: subscription matched would read as 50% dropped).
_MIN_FRAMES_FOR_DROPS = 10


@dataclass
class _Problem:
    level: int
    message: str
    since: float
    expires: float | None


def threshold_level(value: float | None, warn: float, error: float) -> int:
    """OK/WARN/ERROR of ``value`` against thresholds (reached means raised; <= 0 is disabled)."""
    if value is None:
        return OK
    if error > 0 and value >= error:
        return ERROR
    if warn > 0 and value >= warn:
        return WARN
    return OK


class DiagnosticsPublisher:
    """Publishes the node's statuses (see the module doc) on ``/diagnostics`` every ``period_s``.

    ``report`` raises a named problem (bad input, lost camera, missing engine) that stays until
    ``clear`` or until ``ttl_s`` passes without another report, so one bad frame shows as WARN for a
    while and then recovers on its own. ``clock`` (seconds, monotonic) times those TTLs.
    """

    def __init__(
        self,
        node: Node,
        recorder: LatencyRecorder,
        component: str = "perception",
        hardware_id: str = "",
        period_s: float = 1.0,
        warn_ms: float = 0.0,
        error_ms: float = 0.0,
        frame_age_ms: tuple[float, float] = (0.0, 0.0),
        dropped: tuple[float, float] = (0.0, 0.0),
        level_stage: str = END_TO_END,
        topic: str = "/diagnostics",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Injectable so problem TTLs can be tested without sleeping (a sleep races a loaded machine).
        self._clock = clock
        self._node = node
        self._recorder = recorder
        self.fqn = node.get_fully_qualified_name()
        self.component = component
        self.name = f"{self.fqn}: {component}"
        self.hardware_id = hardware_id or self.fqn
        self._warn_ms, self._error_ms = warn_ms, error_ms
        self._frame_age_ms, self._dropped = frame_age_ms, dropped
        self._level_stage = level_stage
        self._problems: dict[str, _Problem] = {}
        self._values: dict[str, str] = {}
        self._input_values: dict[str, str] = {}
        self._status_sources: list[Callable[[], list[DiagnosticStatus]]] = []
        #: Why the node does not process its input now (``enabled`` false), or empty. While set, the
        #: summary says so and dropped input frames are counted but raise no WARN/ERROR (chosen, not
        #: fallen behind).
        self.paused = ""
        self._lock = threading.Lock()
        # Reliable, keep last 10 (diagnostic_updater's), overridable like every node publisher.
        self._pub = overridable_publisher(node.create_publisher, DiagnosticArray, topic, QoSProfile(depth=10))
        self._timer = node.create_timer(period_s, self.publish) if period_s > 0 else None

    @classmethod
    def from_params(
        cls, node: Node, recorder: LatencyRecorder, component: str, params: Mapping[str, Any]
    ) -> DiagnosticsPublisher:
        """The publisher configured by ``DIAGNOSTICS_PARAMETERS``' values in ``params``."""
        return cls(
            node,
            recorder,
            component=component,
            hardware_id=str(params["hardware_id"]),
            period_s=float(params["diagnostics_period"]),
            warn_ms=float(params["latency_warn_ms"]),
            error_ms=float(params["latency_error_ms"]),
            frame_age_ms=(float(params["frame_age_warn_ms"]), float(params["frame_age_error_ms"])),
            dropped=(float(params["dropped_frames_warn"]), float(params["dropped_frames_error"])),
        )

    @property
    def recorder(self) -> LatencyRecorder:
        return self._recorder

    def report(self, key: str, level: int, message: str, ttl_s: float | None = 10.0) -> None:
        now = self._clock()
        with self._lock:
            old = self._problems.get(key)
            since = old.since if old is not None and old.level == level else now
            self._problems[key] = _Problem(level, message, since, None if ttl_s is None else now + ttl_s)
        if self._timer is not None and (old is None or old.level != level):
            self.publish()  # news goes out now (as diagnostic_updater's force_update), not a period later

    def clear(self, key: str) -> None:
        with self._lock:
            self._problems.pop(key, None)

    def set_value(self, key: str, value: object) -> None:
        """A value of the node's summary status (model, backend, frames published...)."""
        with self._lock:
            self._values[key] = _fmt(value)

    def set_input_value(self, key: str, value: object) -> None:
        """A value of the input status (a subscription's reliability, lost messages, publishers)."""
        with self._lock:
            self._input_values[key] = _fmt(value)

    def add_status_source(self, source: Callable[[], list[DiagnosticStatus]]) -> None:
        """``source()`` gives more statuses at every publish (named ``<fqn>: <task>`` by the node; their
        messages name what they describe, since the summary's message may quote them)."""
        self._status_sources.append(source)

    def remove_status_source(self, source: Callable[[], list[DiagnosticStatus]]) -> None:
        if source in self._status_sources:
            self._status_sources.remove(source)

    def status(self) -> DiagnosticStatus:
        """The node's summary status (its overall level and one-line message)."""
        return self.statuses()[0]

    def statuses(self) -> list[DiagnosticStatus]:
        """The summary status first, then latency, then input (when the node takes frames), then those
        of the status sources."""
        now = self._clock()
        with self._lock:
            for key in [k for k, p in self._problems.items() if p.expires is not None and p.expires < now]:
                del self._problems[key]
            problems = sorted(self._problems.items(), key=lambda kv: -kv[1].level)
            values, input_values = dict(self._values), dict(self._input_values)
        summary = self._recorder.summary()
        latency = self._latency_status(summary)
        inputs = self._input_status(summary, input_values)
        parts = [s for s in (latency, inputs) if s is not None]
        parts += [s for source in self._status_sources for s in source()]
        level = max([_level(s) for s in parts] + [p.level for _, p in problems] + [OK])
        if problems:
            key, worst = problems[0]
            message = f"{key}: {worst.message}"
            if len(problems) > 1:
                message += f" (+{len(problems) - 1} more, see values)"
        else:
            notes = [self.paused] if self.paused else []
            notes += [s.message for s in parts if _level(s) > OK]
            message = "; ".join(notes) or (latency.message if latency is not None else "running")
        kvs = [
            KeyValue(key=f"problem.{k}", value=f"{LEVEL_NAMES[p.level]}: {p.message}") for k, p in problems
        ]
        kvs += [KeyValue(key=k, value=v) for k, v in values.items()]
        main = DiagnosticStatus(
            level=bytes([level]), name=self.name, message=message, hardware_id=self.hardware_id, values=kvs
        )
        return [main, *parts]

    def _latency_status(self, summary: Mapping[str, Any]) -> DiagnosticStatus:
        stages = {k: v for k, v in summary.items() if k != FRAME_AGE}
        values = [
            KeyValue(key=f"{stage}.{k}", value=_fmt(getattr(s, k)))
            for stage, s in stages.items()
            for k in _STATS
        ]
        main = stages.get(self._level_stage)
        if main is None:
            return self._status("latency", OK, "waiting for input", values)
        level = threshold_level(main.mean_ms, self._warn_ms, self._error_ms)
        message = f"{self._level_stage} {main.mean_ms:.1f} ms mean, {main.rate_hz:.1f} Hz"
        if level > OK:
            message += f" (limit {self._error_ms if level >= ERROR else self._warn_ms:g} ms)"
        return self._status("latency", level, message, values)

    def _input_status(self, summary: Mapping[str, Any], extra: Mapping[str, str]) -> DiagnosticStatus | None:
        age = summary.get(FRAME_AGE)
        drops = self._recorder.drops()
        if age is None and not extra and not drops.total_dropped:
            return None  # a node without input frames (simulator, evaluator)
        values = (
            [KeyValue(key=f"{FRAME_AGE}.{k}", value=_fmt(getattr(age, k))) for k in _STATS] if age else []
        )
        values += [
            KeyValue(key="dropped.window", value=str(drops.window_dropped)),
            KeyValue(key="processed.window", value=str(drops.window_processed)),
            KeyValue(key="dropped.ratio", value=_fmt(drops.ratio)),
            KeyValue(key="dropped.total", value=str(drops.total_dropped)),
            KeyValue(key="processed.total", value=str(drops.total_processed)),
        ]
        values += [KeyValue(key=k, value=v) for k, v in extra.items()]
        enough = drops.window_sent >= _MIN_FRAMES_FOR_DROPS
        drop_level = threshold_level(drops.ratio if enough and not self.paused else None, *self._dropped)
        age_level = threshold_level(age.mean_ms if age else None, *self._frame_age_ms)
        sent = drops.window_sent
        parts = []
        if age is not None:
            parts.append(f"frame age {age.mean_ms:.0f} ms mean")
            if age_level > OK:
                parts[-1] += f" (limit {self._frame_age_ms[age_level - 1]:g} ms)"
        parts.append(f"{drops.ratio:.0%} of input frames dropped ({drops.window_dropped} of {sent})")
        if drop_level > OK:
            parts[-1] += f", limit {self._dropped[drop_level - 1]:.0%}: the node falls behind its input"
        elif self.paused:
            parts[-1] += f" ({self.paused})"
        return self._status("input", max(age_level, drop_level), ", ".join(parts), values)

    def _status(self, task: str, level: int, message: str, values: list[KeyValue]) -> DiagnosticStatus:
        return DiagnosticStatus(
            level=bytes([level]),
            name=f"{self.fqn}: {task}",
            message=message,
            hardware_id=self.hardware_id,
            values=values,
        )

    def publish(self) -> None:
        if not self._node.context.ok():  # shutting down (Ctrl-C): a report then has nowhere to go
            return
        msg = DiagnosticArray()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.status = self.statuses()
        self._pub.publish(msg)


def _level(status: DiagnosticStatus) -> int:
    return status.level[0] if isinstance(status.level, bytes) else int(status.level)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
