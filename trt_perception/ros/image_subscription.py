"""A subscription whose reliability follows its publishers, with lost and dropped messages counted and
publishers that cannot match, or that report a failure themselves, named instead of silently missing.

A BEST_EFFORT subscription to a RELIABLE 720p publisher running Fast DDS defaults loses most frames (a
lost fragment is never resent: the detector answered 26 of 300 frames while a RELIABLE subscriber got
all 300). rosbag2's recorder meets the same problem by subscribing with the reliability of the
publishers it finds: RELIABLE when every publisher is reliable, else BEST_EFFORT (which matches both).
This does the same: it starts BEST_EFFORT (which matches any publisher, so nothing waits for the check),
and when the publishers call for another reliability it makes the new subscription before it breaks the
old one: the old one goes once the new one has matched every publisher (or after ``overlap_s``), and the
duplicates the two deliver meanwhile are dropped.

QoS comes from the standard ``qos_overrides./<topic>.subscription.{history,depth,reliability,durability}``
parameters, declared once per topic here (rclpy's ``QoSOverridingOptions`` would declare them on the
first ``create_subscription`` and then pin every later subscription to the first reliability). The
reliability default ``best_available`` (``system_default`` on Humble, which has no such policy) means
"follow the publishers"; any other value is the user's choice and adaptation is off.

It also counts DDS message-lost events and dropped frames (gaps in each publisher's sequence numbers:
lost, or overwritten in the queue while the node was busy), records frame age, and reports publishers
that the graph shows but the subscription never matched (naming the incompatible QoS policy), and a
silent topic: no publisher, an upstream node that reports WARN/ERROR on /diagnostics, or a publisher
whose frames do not arrive.
"""

from __future__ import annotations

import functools
import inspect
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterAlreadyDeclaredException
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSPolicyKind,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.subscription import Subscription

try:  # rclpy >= 7 (Jazzy, Kilted)
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks  # type: ignore[no-redef]

from ..io.stamps import stamp_ns
from ..metrics.latency import LatencyRecorder
from .diagnostics import ERROR, LEVEL_NAMES, WARN
from .params import Param

#: ``report(key, level, message)``: where problems go (a node's ``warn_input``).
Report = Callable[[str, int, str], None]
#: ``set_value(key, value)``: a diagnostics value (reliability, lost messages).
SetValue = Callable[[str, object], None]

#: Fast DDS profile shipped for images (shared-memory transport with large segments).
FASTDDS_PROFILE_NAME = "fastdds_images.xml"

#: The reliability parameter's "follow the publishers" value: BEST_AVAILABLE (Iron and later) says the
#: same thing to anyone reading the parameter; Humble has no such policy.
ADAPTIVE = getattr(ReliabilityPolicy, "BEST_AVAILABLE", ReliabilityPolicy.SYSTEM_DEFAULT)
#: Least depth of a RELIABLE subscription chosen by following the publishers: Fast DDS's reliable reader
#: with a history of 1 loses frames that arrive in fragments (UDP): an idle depth-1 subscriber got 223
#: of 300 720p 30 Hz frames from a publisher on Fast DDS defaults, depth 2 got all 300 (the newest
#: waiting frame is overwritten when the node is busy, one frame later than at depth 1). Both queued
#: frames are answered: over reliable UDP frames arrive in pairs, and taking only the newest answered 270.
RELIABLE_MIN_DEPTH = 2
_NOTES = {
    "reliability": f" ({ADAPTIVE.name.lower()}: follow the publishers' reliability)",
    "depth": f" (following reliable publishers: at least {RELIABLE_MIN_DEPTH})",
}
#: rclpy >= Iron passes MessageInfo (publisher gid, sequence number) to two-argument callbacks.
_HAS_MESSAGE_INFO = hasattr(Subscription, "CallbackType")
#: Statuses older than this on /diagnostics no longer describe an upstream node.
_UPSTREAM_FRESH_S = 10.0

IMAGE_SUBSCRIPTION_PARAMETERS: tuple[Param, ...] = (
    Param(
        "no_data_timeout",
        5.0,
        "Seconds an image subscription may see no data while a publisher exists "
        "before the node warns (often a QoS or DDS transport mismatch); 0 disables the check.",
    ),
)


def choose_reliability(publishers: Iterable[ReliabilityPolicy]) -> ReliabilityPolicy:
    """RELIABLE when there are publishers and all are reliable; BEST_EFFORT (matches any) otherwise."""
    policies = list(publishers)
    if policies and all(p == ReliabilityPolicy.RELIABLE for p in policies):
        return ReliabilityPolicy.RELIABLE
    return ReliabilityPolicy.BEST_EFFORT


@dataclass(frozen=True)
class UpstreamStatus:
    level: int
    name: str
    message: str
    at: float


class DiagnosticsListener:
    """The latest WARN/ERROR status each node publishes on /diagnostics: one subscription per node,
    shared by all its image subscriptions (``for_node``)."""

    _shared: weakref.WeakKeyDictionary[Node, DiagnosticsListener] = weakref.WeakKeyDictionary()

    def __init__(self, node: Node, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._latest: dict[str, UpstreamStatus] = {}
        # Best effort matches every /diagnostics publisher, reliable or not.
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_array, qos_profile_sensor_data)

    @classmethod
    def for_node(cls, node: Node) -> DiagnosticsListener:
        listener = cls._shared.get(node)
        if listener is None:
            listener = cls._shared[node] = cls(node)
        return listener

    def _on_array(self, msg: DiagnosticArray) -> None:
        now = self._clock()
        for s in msg.status:
            level = s.level[0] if isinstance(s.level, bytes) else int(s.level)
            self._latest[s.name] = UpstreamStatus(level, s.name, s.message, now)

    def worst(self, fqn: str) -> UpstreamStatus | None:
        """The worst fresh WARN/ERROR status of node ``fqn``: named ``<fqn>: <task>`` (diagnostic_updater
        with use_fqn, this package) or ``<name>: <task>`` (diagnostic_updater's default)."""
        prefixes = (f"{fqn}: ", f"{fqn.rsplit('/', 1)[-1]}: ")
        now = self._clock()
        found = [
            s
            for name, s in self._latest.items()
            if name.startswith(prefixes) and WARN <= s.level <= ERROR and now - s.at <= _UPSTREAM_FRESH_S
        ]
        return max(found, key=lambda s: s.level, default=None)


class AdaptiveSubscription:
    """``create_subscription`` with the reliability of the topic's publishers (checked every
    ``period_s``) unless ``qos_overrides`` fix it, KEEP_LAST ``depth`` and VOLATILE by default, plus
    ``lost`` (messages DDS reported lost), ``dropped`` (sequence gaps), frame age and drops in
    ``recorder``, and a report of publishers still unmatched ``unmatched_after_s`` after they appeared,
    and of a topic with no publisher or no message for ``no_data_timeout_s``."""

    def __init__(
        self,
        node: Node,
        msg_type: Any,
        topic: str,
        callback: Callable[[Any], None],
        depth: int = 1,
        report: Report | None = None,
        period_s: float = 0.5,
        unmatched_after_s: float = 1.0,
        overlap_s: float = 3.0,
        no_data_timeout_s: float = 0.0,
        set_value: SetValue | None = None,
        clock: Callable[[], float] = time.monotonic,
        recorder: LatencyRecorder | None = None,
    ) -> None:
        self._node = node
        self._type = msg_type
        self.topic = node.resolve_topic_name(topic)
        self._callback = callback
        self._report = report
        self._unmatched_after_s = unmatched_after_s
        self._clock = clock
        self._no_data_timeout_s = no_data_timeout_s
        self._set_value = set_value
        self._recorder = recorder
        self.last_message = clock()  # since the subscription was made, before any message
        self.lost = 0
        self.dropped = 0
        self._last_seq: dict[bytes, int] = {}
        self.matched: int | None = None  # None where rclpy has no matched event (Humble)
        self.incompatible_policy = ""
        self._publishers_since: dict[str, float] = {}
        self._base_qos = self._declare_qos(max(1, int(depth)))
        self.adaptive = self._base_qos.reliability == ADAPTIVE
        self.reliability = ReliabilityPolicy.BEST_EFFORT if self.adaptive else self._base_qos.reliability
        self._overlap_s = overlap_s
        self._retiring: Any = None  # the previous subscription, kept while the new one matches
        self._retire_at = 0.0
        self._generation = 0
        self._recent: deque[tuple[int, int, str]] = deque(maxlen=16)
        self._upstream = (
            DiagnosticsListener.for_node(node) if report is not None and no_data_timeout_s > 0 else None
        )
        self._sub = self._subscribe(self.reliability)
        self.check()
        self._timer = node.create_timer(period_s, self.check)

    def destroy(self) -> None:
        """Destroy the subscriptions (the retiring one too) and the check timer; a lifecycle node's
        deactivate calls this, and a new AdaptiveSubscription on activate starts over."""
        self._node.destroy_timer(self._timer)
        if self._retiring is not None:
            self._node.destroy_subscription(self._retiring)
            self._retiring = None
        self._node.destroy_subscription(self._sub)

    def _declare_qos(self, depth: int) -> QoSProfile:
        """The ``qos_overrides./<topic>.subscription.*`` parameters (read-only, as rclpy declares them;
        a second AdaptiveSubscription on the topic, e.g. after a lifecycle re-activate, reads them)."""
        defaults: dict[str, Any] = {
            "history": HistoryPolicy.KEEP_LAST.name.lower(),
            "depth": depth,
            "reliability": ADAPTIVE.name.lower(),
            "durability": DurabilityPolicy.VOLATILE.name.lower(),
        }
        values: dict[str, Any] = {}
        for policy, default in defaults.items():
            name = f"qos_overrides.{self.topic}.subscription.{policy}"
            description = f"{policy} for subscription `{self.topic}`" + _NOTES.get(policy, "")
            try:
                param = self._node.declare_parameter(
                    name, default, ParameterDescriptor(description=description, read_only=True)
                )
            except ParameterAlreadyDeclaredException:
                param = self._node.get_parameter(name)
            values[policy] = param.value
        try:
            return QoSProfile(
                history=HistoryPolicy[str(values["history"]).upper()],
                depth=int(values["depth"]),
                reliability=ReliabilityPolicy[str(values["reliability"]).upper()],
                durability=DurabilityPolicy[str(values["durability"]).upper()],
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(
                f"qos_overrides.{self.topic}.subscription: invalid value {exc} in {values}"
            ) from None

    @property
    def qos(self) -> QoSProfile:
        q = self._base_qos
        depth = q.depth
        if self.adaptive and self.reliability == ReliabilityPolicy.RELIABLE:
            depth = max(depth, RELIABLE_MIN_DEPTH)
        return QoSProfile(reliability=self.reliability, durability=q.durability, history=q.history, depth=depth)

    def _subscribe(self, reliability: ReliabilityPolicy) -> Any:
        self.reliability = reliability
        events: dict[str, Callable[[Any], None]] = {
            "message_lost": self._on_lost,
            "incompatible_qos": self._on_incompatible,
        }
        self.matched = None
        self._generation += 1
        if "matched" in inspect.signature(SubscriptionEventCallbacks).parameters:  # rclpy >= Iron
            events["matched"] = functools.partial(self._on_matched, self._generation)
            self.matched = 0
        return self._node.create_subscription(
            self._type,
            self.topic,
            self._deliver_with_info if _HAS_MESSAGE_INFO else self._deliver,
            self.qos,
            event_callbacks=SubscriptionEventCallbacks(**events),
        )

    def _deliver_with_info(self, msg: Any, info: Any) -> None:
        self._deliver(msg, info)

    def _deliver(self, msg: Any, info: Any = None) -> None:
        self.last_message = self._clock()
        header = getattr(msg, "header", None)
        if self._retiring is not None and header is not None:  # two subscriptions overlap: each message once
            key = (header.stamp.sec, header.stamp.nanosec, header.frame_id)
            if key in self._recent:
                return
            self._recent.append(key)
        self._count_gap(info)
        if self._recorder is not None and header is not None and (stamp := stamp_ns(header)) > 0:
            self._recorder.record_frame_age(stamp, self._node.get_clock().now().nanoseconds)
        self._callback(msg)

    def _count_gap(self, info: Any) -> None:
        """Frames the publisher sent between two this node received: lost in transport or overwritten
        in the queue (KEEP_LAST ``depth``) while the node was busy. Frames before the first one
        received are not counted (the subscription may have matched later)."""
        seq = info.get("publication_sequence_number") if info else None
        gid = (info.get("publisher_gid") or {}).get("data") if info else None
        if not seq or gid is None:
            return
        key = bytes(gid)
        last = self._last_seq.get(key)
        if last is not None and seq > last + 1:
            self._add_dropped(seq - last - 1)
        if last is None or seq > last:
            self._last_seq[key] = seq

    def _add_dropped(self, count: int) -> None:
        self.dropped += count
        if self._recorder is not None:
            self._recorder.record_dropped(count)

    def _on_lost(self, info: Any) -> None:
        count = int(info.total_count_change)
        self.lost += count
        if not _HAS_MESSAGE_INFO:  # with sequence numbers the gaps count these already
            self._add_dropped(count)

    def _on_incompatible(self, info: Any) -> None:
        try:
            self.incompatible_policy = QoSPolicyKind(int(info.last_policy_kind)).name
        except ValueError:
            self.incompatible_policy = str(info.last_policy_kind)
        if self._report is not None:
            self._report(
                "unmatched",
                WARN,
                f"a publisher on {self.topic} offers an incompatible {self.incompatible_policy} QoS policy "
                f"(this subscription: {self._describe(self.qos)}; publishers: {self._publishers()})",
            )

    def _on_matched(self, generation: int, info: Any) -> None:
        if generation == self._generation:  # the retiring subscription's matches are not the new one's
            self.matched = int(info.current_count)

    def check(self) -> None:
        """Follow the publishers' reliability; report publishers that stay unmatched."""
        infos = self._node.get_publishers_info_by_topic(self.topic)
        now = self._clock()
        if self.matched is not None and hasattr(self._sub, "get_publisher_count"):
            # The matched event can be missed by a subscription made while its publishers already
            # matched (an adaptation): the live count never is, and a false "unmatched" WARN hides
            # the node's real problems behind it.
            self.matched = self._sub.get_publisher_count()
        if self._retiring is not None and (now >= self._retire_at or (self.matched or 0) >= len(infos) > 0):
            self._node.destroy_subscription(self._retiring)
            self._retiring = None
        wanted = choose_reliability(i.qos_profile.reliability for i in infos)
        if self.adaptive and infos and wanted != self.reliability and self._retiring is None:
            self._retiring, self._sub = self._sub, self._subscribe(wanted)
            self._retire_at = now + self._overlap_s
        names = {_fqn(i) for i in infos}
        self._publishers_since = {n: self._publishers_since.get(n, now) for n in names}
        self._report_unmatched(infos, now)
        self._report_no_data(infos, now)
        if self._set_value is not None:
            self._set_value(f"{self.topic}.reliability", self.reliability.name)
            self._set_value(f"{self.topic}.depth", self.qos.depth)
            self._set_value(f"{self.topic}.lost", self.lost)
            self._set_value(f"{self.topic}.dropped", self.dropped)
            self._set_value(f"{self.topic}.publishers", ", ".join(sorted(names)) or "none")

    def _report_no_data(self, infos: list[Any], now: float) -> None:
        silent = now - self.last_message
        if self._report is None or self._no_data_timeout_s <= 0 or silent <= self._no_data_timeout_s:
            return
        if not infos:
            self._report(
                "no_publisher",
                WARN,
                f"no publisher discovered on {self.topic} for {silent:.0f} s: is the camera running, in "
                "this ROS_DOMAIN_ID, and on a transport this process shares (UDPv4, shared memory or "
                f"TCPv4 with {FASTDDS_PROFILE_NAME})?",
            )
            return
        upstream = [u for u in (self._upstream.worst(_fqn(i)) for i in infos) if u] if self._upstream else []
        if upstream:
            worst = max(upstream, key=lambda u: u.level)
            self._report(
                "no_data",
                WARN,  # the fault is upstream and raised there: one ERROR per root cause, not one per node
                f"no image on {self.topic} for {silent:.0f} s: upstream {worst.name} reports "
                f"{LEVEL_NAMES[worst.level]}: {worst.message}",
            )
            return
        self._report(
            "no_data",
            WARN,
            f"{len(infos)} publisher(s) on {self.topic} ({self._publishers(infos)}) but no image for "
            f"{silent:.0f} s, and none reports a problem on /diagnostics: the publisher sends nothing, or "
            f"its frames do not cross (check QoS and the Fast DDS profile, {FASTDDS_PROFILE_NAME})",
        )

    def _report_unmatched(self, infos: list[Any], now: float) -> None:
        if self._report is None or self.matched is None or self.matched >= len(infos):
            return
        if self._retiring is not None:  # adapting: the new subscription is still matching, the old serves
            return
        # Once DDS named an incompatible policy there is nothing to wait for: name them at once.
        wait = 0.0 if self.incompatible_policy else self._unmatched_after_s
        old = [n for n, since in self._publishers_since.items() if now - since >= wait]
        if len(old) > self.matched:
            why = (
                f"incompatible {self.incompatible_policy} QoS policy"
                if self.incompatible_policy
                else "an incompatible QoS or a transport the two sides do not share"
            )
            self._report(
                "unmatched",
                WARN,
                f"{len(infos)} publisher(s) on {self.topic} but {self.matched} matched: {self._publishers(infos)}; "
                f"{why} (this subscription: {self._describe(self.qos)})",
            )

    def _publishers(self, infos: list[Any] | None = None) -> str:
        infos = self._node.get_publishers_info_by_topic(self.topic) if infos is None else infos
        return ", ".join(f"{_fqn(i)} ({self._describe(i.qos_profile)})" for i in infos) or "none discovered"

    @staticmethod
    def _describe(qos: QoSProfile) -> str:
        return f"{qos.reliability.name}, {qos.durability.name}"


def _fqn(info: Any) -> str:
    return f"{info.node_namespace.rstrip('/')}/{info.node_name}"
