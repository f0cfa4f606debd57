"""A subscription whose reliability follows its publishers, with lost messages and unmatched publishers
reported instead of silently missing.

A BEST_EFFORT subscription to a RELIABLE 720p publisher running Fast DDS defaults loses most frames (a
lost fragment is never resent: the detector answered 26 of 300 frames while a RELIABLE subscriber got
all 300). rosbag2's recorder meets the same problem by subscribing with the reliability of the
publishers it finds: RELIABLE when every publisher is reliable, else BEST_EFFORT (which matches both).
This does the same: it starts BEST_EFFORT (which matches any publisher, so nothing waits for the check),
and when the publishers call for another reliability it makes the new subscription before it breaks the
old one: the old one goes once the new one has matched every publisher (or after ``overlap_s``), and the
duplicates the two deliver meanwhile are dropped. It also counts DDS message-lost events
and names publishers that the graph shows but the subscription never matched (an incompatible QoS, or
a transport the two participants do not share, e.g. a publisher with FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA).
"""

from __future__ import annotations

import functools
import inspect
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

try:  # rclpy >= 7 (Jazzy, Kilted)
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks  # type: ignore[no-redef]

from .diagnostics import WARN
from .params import Param

#: ``report(key, level, message)``: where problems go (a node's ``warn_input``).
Report = Callable[[str, int, str], None]
#: ``set_value(key, value)``: a diagnostics value (reliability, lost messages).
SetValue = Callable[[str, object], None]

#: Fast DDS profile shipped for images (shared-memory transport with large segments).
FASTDDS_PROFILE_NAME = "fastdds_images.xml"

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


class AdaptiveSubscription:
    """``create_subscription`` with the reliability of the topic's publishers (checked every
    ``period_s``), KEEP_LAST ``depth`` and VOLATILE, plus ``lost`` (messages DDS reported lost) and a
    report of publishers still unmatched ``unmatched_after_s`` after they appeared, and of a topic with
    no publisher or no message for ``no_data_timeout_s``."""

    def __init__(
        self,
        node: Node,
        msg_type: Any,
        topic: str,
        callback: Callable[[Any], None],
        depth: int = 1,
        report: Report | None = None,
        period_s: float = 0.5,
        unmatched_after_s: float = 1.5,
        overlap_s: float = 3.0,
        no_data_timeout_s: float = 0.0,
        set_value: SetValue | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._node = node
        self._type = msg_type
        self.topic = node.resolve_topic_name(topic)
        self._callback = callback
        self._depth = max(1, int(depth))
        self._report = report
        self._unmatched_after_s = unmatched_after_s
        self._clock = clock
        self._no_data_timeout_s = no_data_timeout_s
        self._set_value = set_value
        self.last_message = clock()  # since the subscription was made, before any message
        self.lost = 0
        self.matched: int | None = None  # None where rclpy has no matched event (Humble)
        self._publishers_since: dict[str, float] = {}
        self.reliability = ReliabilityPolicy.BEST_EFFORT
        self._overlap_s = overlap_s
        self._retiring: Any = None  # the previous subscription, kept while the new one matches
        self._retire_at = 0.0
        self._generation = 0
        self._recent: deque[tuple[int, int, str]] = deque(maxlen=16)
        self._sub = self._subscribe(ReliabilityPolicy.BEST_EFFORT)
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

    @property
    def qos(self) -> QoSProfile:
        return QoSProfile(
            reliability=self.reliability,
            durability=DurabilityPolicy.VOLATILE,
            history=HistoryPolicy.KEEP_LAST,
            depth=self._depth,
        )

    def _subscribe(self, reliability: ReliabilityPolicy) -> Any:
        self.reliability = reliability
        events: dict[str, Callable[[Any], None]] = {"message_lost": self._on_lost}
        self.matched = None
        self._generation += 1
        if "matched" in inspect.signature(SubscriptionEventCallbacks).parameters:  # rclpy >= Iron
            events["matched"] = functools.partial(self._on_matched, self._generation)
            self.matched = 0
        return self._node.create_subscription(
            self._type,
            self.topic,
            self._deliver,
            self.qos,
            event_callbacks=SubscriptionEventCallbacks(**events),
        )

    def _deliver(self, msg: Any) -> None:
        self.last_message = self._clock()
        if self._retiring is not None:  # two subscriptions overlap: each message once
            header = getattr(msg, "header", None)
            if header is not None:
                key = (header.stamp.sec, header.stamp.nanosec, header.frame_id)
                if key in self._recent:
                    return
                self._recent.append(key)
        self._callback(msg)

    def _on_lost(self, info: Any) -> None:
        self.lost += int(info.total_count_change)

    def _on_matched(self, generation: int, info: Any) -> None:
        if generation == self._generation:  # the retiring subscription's matches are not the new one's
            self.matched = int(info.current_count)

    def check(self) -> None:
        """Follow the publishers' reliability; report publishers that stay unmatched."""
        infos = self._node.get_publishers_info_by_topic(self.topic)
        now = self._clock()
        if self._retiring is not None and (now >= self._retire_at or (self.matched or 0) >= len(infos) > 0):
            self._node.destroy_subscription(self._retiring)
            self._retiring = None
        wanted = choose_reliability(i.qos_profile.reliability for i in infos)
        if infos and wanted != self.reliability and self._retiring is None:
            self._retiring, self._sub = self._sub, self._subscribe(wanted)
            self._retire_at = now + self._overlap_s
        names = {f"{i.node_namespace.rstrip('/')}/{i.node_name}" for i in infos}
        self._publishers_since = {n: self._publishers_since.get(n, now) for n in names}
        self._report_unmatched(infos, now)
        self._report_no_data(infos, now)
        if self._set_value is not None:
            self._set_value(f"{self.topic}.reliability", self.reliability.name)
            self._set_value(f"{self.topic}.lost", self.lost)

    def _report_no_data(self, infos: list[Any], now: float) -> None:
        silent = now - self.last_message
        if self._report is None or self._no_data_timeout_s <= 0 or silent <= self._no_data_timeout_s:
            return
        if not infos:
            # Also what a publisher on a transport this participant lacks looks like: Fast DDS
            # LARGE_DATA participants are not even discovered by default or profile ones.
            self._report(
                "no_publisher",
                WARN,
                f"no publisher discovered on {self.topic} for {silent:.0f} s: is the camera running, in "
                "this ROS_DOMAIN_ID, and on a shared transport (a publisher with "
                f"FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA is invisible here; export {FASTDDS_PROFILE_NAME} "
                "for it)?",
            )
        else:
            qos = ", ".join(f"{i.node_name}:{i.qos_profile.reliability.name}" for i in infos)
            self._report(
                "no_data",
                WARN,
                f"{len(infos)} publisher(s) on {self.topic} ({qos}) but no image for {silent:.0f} s: "
                f"check QoS and the Fast DDS profile ({FASTDDS_PROFILE_NAME})",
            )

    def _report_unmatched(self, infos: list[Any], now: float) -> None:
        if self._report is None or self.matched is None or self.matched >= len(infos):
            return
        old = [n for n, since in self._publishers_since.items() if now - since >= self._unmatched_after_s]
        if len(old) > self.matched:
            who = ", ".join(
                f"{i.node_namespace.rstrip('/')}/{i.node_name} ({i.qos_profile.reliability.name}, "
                f"{i.qos_profile.durability.name})"
                for i in infos
            )
            self._report(
                "unmatched",
                WARN,
                f"{len(infos)} publisher(s) on {self.topic} but {self.matched} matched: {who}; an "
                "incompatible QoS or a transport the two sides do not share (e.g. the publisher runs "
                "FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA): export the shipped Fast DDS profile there too",
            )
