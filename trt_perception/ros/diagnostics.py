"""Turn a LatencyRecorder (and a node's problems) into ``diagnostic_msgs/DiagnosticArray``.

One status per node, named ``<node>: <component>`` with ``hardware_id`` set, so rqt_runtime_monitor and
diagnostic_aggregator group them by name prefix. Values are ``<stage>.<stat>`` (``inference.mean_ms``,
``end_to_end.p95_ms``, ``frame_age.mean_ms``, ``end_to_end.rate_hz``) plus whatever the node adds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

from ..metrics.latency import END_TO_END, LatencyRecorder
from .params import Param

# Levels as ints for comparison; the message field itself is a one-byte ``bytes``.
OK, WARN, ERROR, STALE = 0, 1, 2, 3

#: Every node's diagnostics parameters (``DiagnosticsPublisher.from_params`` reads them).
DIAGNOSTICS_PARAMETERS: tuple[Param, ...] = (
    Param("diagnostics_period", 1.0, "Seconds between /diagnostics messages (0 disables them)."),
    Param("latency_warn_ms", 0.0, "End-to-end mean latency (ms) that turns the status WARN; 0 disables."),
    Param("latency_error_ms", 0.0, "End-to-end mean latency (ms) that turns the status ERROR; 0 disables."),
    Param("hardware_id", "", "diagnostic_msgs hardware_id; empty uses the node's fully qualified name."),
)

_STATS = ("count", "mean_ms", "std_ms", "min_ms", "max_ms", "p50_ms", "p95_ms", "p99_ms", "rate_hz")


@dataclass
class _Problem:
    level: int
    message: str
    since: float
    expires: float | None


def latency_level(mean_ms: float | None, warn_ms: float, error_ms: float) -> int:
    """OK/WARN/ERROR from a mean latency and thresholds (a threshold <= 0 is disabled)."""
    if mean_ms is None:
        return OK
    if error_ms > 0 and mean_ms >= error_ms:
        return ERROR
    if warn_ms > 0 and mean_ms >= warn_ms:
        return WARN
    return OK


class DiagnosticsPublisher:
    """Publishes the node's latency and problems on ``/diagnostics`` every ``period_s``.

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
        level_stage: str = END_TO_END,
        topic: str = "/diagnostics",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Injectable so problem TTLs can be tested without sleeping (a sleep races a loaded machine).
        self._clock = clock
        self._node = node
        self._recorder = recorder
        self.name = f"{node.get_name()}: {component}"
        self.hardware_id = hardware_id or node.get_fully_qualified_name()
        self._warn_ms, self._error_ms = warn_ms, error_ms
        self._level_stage = level_stage
        self._problems: dict[str, _Problem] = {}
        self._values: dict[str, str] = {}
        self._lock = threading.Lock()
        self._pub = node.create_publisher(DiagnosticArray, topic, 10)
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
        )

    def report(self, key: str, level: int, message: str, ttl_s: float | None = 10.0) -> None:
        now = self._clock()
        with self._lock:
            old = self._problems.get(key)
            since = old.since if old is not None and old.level == level else now
            self._problems[key] = _Problem(level, message, since, None if ttl_s is None else now + ttl_s)

    def clear(self, key: str) -> None:
        with self._lock:
            self._problems.pop(key, None)

    def set_value(self, key: str, value: object) -> None:
        """An extra key-value shown with the latency (fps, dropped frames, engine path...)."""
        with self._lock:
            self._values[key] = _fmt(value)

    def status(self) -> DiagnosticStatus:
        now = self._clock()
        with self._lock:
            for key in [k for k, p in self._problems.items() if p.expires is not None and p.expires < now]:
                del self._problems[key]
            problems = sorted(self._problems.items(), key=lambda kv: -kv[1].level)
            extra = dict(self._values)
        summary = self._recorder.summary()
        values = [
            KeyValue(key=f"{stage}.{k}", value=_fmt(getattr(s, k)))
            for stage, s in summary.items()
            for k in _STATS
        ]
        values += [KeyValue(key=k, value=v) for k, v in extra.items()]
        main = summary.get(self._level_stage)
        level = latency_level(main.mean_ms if main else None, self._warn_ms, self._error_ms)
        if main is not None:
            message = f"{self._level_stage} {main.mean_ms:.1f} ms mean, {main.rate_hz:.1f} Hz"
        else:
            message = "waiting for input"
        if problems:
            level = max(level, problems[0][1].level)
            message = "; ".join(f"{k}: {p.message}" for k, p in problems) + f" | {message}"
        return DiagnosticStatus(
            level=bytes([level]), name=self.name, message=message, hardware_id=self.hardware_id, values=values
        )

    def publish(self) -> None:
        msg = DiagnosticArray()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.status = [self.status()]
        self._pub.publish(msg)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
