"""``bag_replay`` node: publish a rosbag2's topics with their recorded timing (``ros2 bag play``
where that is not installed), so the live pipeline runs on recorded data.

Messages are never deserialised: the bag's CDR bytes go straight to ``Publisher.publish(bytes)``
(rclpy's ``publish_raw``), so a 720p image costs a memcpy, not a Python conversion, and any message
type with an installed Python package replays. A reader thread keeps a short queue filled; the
publisher thread sleeps until each message's due time (log time relative to the first message,
divided by ``rate``) and records how late each publish was (``publish_lag`` on ``/diagnostics``).
Images go out with sensor-data QoS (best effort, as cameras publish), the rest reliable.
A damaged bag replays up to the damage; the error (with the message count) is logged and reported.
"""

from __future__ import annotations

import importlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from rosgraph_msgs.msg import Clock

from ..io.bags import Bag, BagMessage, BagReadError
from ..io.stamps import seconds_to_ns, set_time
from ..ros.diagnostics import ERROR
from ..ros.node_base import PerceptionNode, run_node
from ..ros.params import Param
from ..ros.qos import reliable_qos, sensor_qos

PUBLISH_LAG = "publish_lag"  # publish start - due time (ms): the replay's timing error
PUBLISH = "publish"  # the publish call itself (ms): serialisation-free copy into the transport
_END = object()

PARAMETERS: tuple[Param, ...] = (
    Param("bag", "", "rosbag2 folder (mcap or sqlite3) or a single .mcap/.db3 file to replay."),
    Param("topics", [], "Topics to replay; empty replays every topic of the bag."),
    Param(
        "remap", [], "Topic renames as 'from:=to' or 'from=to' (e.g. '/camera/image_raw:=/front/image_raw')."
    ),
    Param("rate", 1.0, "Playback speed factor (2.0 = twice as fast)."),
    Param("loop", False, "Start again from the beginning at the end of the bag."),
    Param("start_offset", 0.0, "Seconds into the bag to start from."),
    Param("duration", 0.0, "Seconds of the bag to play from the start offset; 0 plays to the end."),
    Param("start_delay", 0.5, "Seconds to wait before the first message (lets subscribers connect)."),
    Param(
        "wait_for_subscribers",
        0,
        "Wait until this many subscribers are on the first image topic (0: no wait).",
    ),
    Param("wait_timeout", 10.0, "Most seconds to wait for those subscribers."),
    Param("publish_clock", False, "Publish the bag time on /clock (for nodes with use_sim_time)."),
    Param("clock_rate_hz", 100.0, "How often /clock is published."),
    Param("queue_size", 16, "Messages read ahead of the publisher (bounded: images are large)."),
    Param("exit_when_done", False, "Shut the node down after the last message (no loop)."),
)


class ReplayPacer:
    """When each message of a pass is due: the first when it is paced, each later one its log-time
    distance from the first, divided by ``rate``. Due times are absolute, so a late publish does
    not delay the ones after it. ROS-free, with ``clock`` and ``wait(seconds) -> stopped`` injectable
    so the schedule is testable exactly, whatever the machine's load."""

    def __init__(
        self, rate: float, wait: Callable[[float], bool], clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.rate, self.clock, self._wait = rate, clock, wait
        self.first_ns: int | None = None
        self.wall0 = 0.0

    def due(self, timestamp_ns: int) -> float:
        """The ``clock`` time at which the message logged at ``timestamp_ns`` is due."""
        if self.first_ns is None:
            self.first_ns, self.wall0 = timestamp_ns, self.clock()
        return self.wall0 + (timestamp_ns - self.first_ns) * 1e-9 / self.rate

    def wait_until(self, due: float) -> bool:
        """Wait until ``due``; True when stopped meanwhile."""
        delay = due - self.clock()
        return delay > 0 and self._wait(delay)


def message_class(msgtype: str) -> Any:
    """``sensor_msgs/msg/Image`` -> the rclpy message class (ImportError when not installed)."""
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def parse_remaps(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        # 'from:=to' reads like a ROS remap; 'from=to' survives `-p remap:=[...]` on a command line
        src, sep, dst = item.partition(":=") if ":=" in item else item.partition("=")
        if not sep or not src or not dst:
            raise ValueError(f"remap entry {item!r} is not 'from:=to' (or 'from=to')")
        out[src] = dst
    return out


class BagReplayNode(PerceptionNode):
    PARAMETERS = PARAMETERS
    COMPONENT = "bag_replay"

    def __init__(self) -> None:
        super().__init__("bag_replay")
        p = self.params
        self.rate = float(p["rate"])
        self._stop = threading.Event()
        self._outputs: dict[str, Any] = {}
        self.published = 0
        self.loops = 0
        self.bag_start_ns = 0
        self._clock_origin: tuple[float, int] | None = None  # (wall perf_counter, bag ns) while playing
        self._read_ns = 0  # the newest log time read from the bag: /clock never runs past it
        self._thread: threading.Thread | None = None
        self.exit_code = 0  # what the process exits with (run_node); 1: the bag could not be replayed
        try:
            if self.rate <= 0:
                raise ValueError(f"rate must be > 0, got {self.rate}")
            if not str(p["bag"]):
                raise ValueError("parameter 'bag' is empty: give the rosbag2 folder or file to replay")
            self.remaps = parse_remaps(list(p["remap"]))
            with Bag(str(p["bag"])) as bag:
                self.info = bag.info
            self._make_publishers()
        except (ValueError, BagReadError, OSError) as exc:
            self.startup_error("bag", f"cannot replay: {exc}")
            if p["exit_when_done"]:  # a scripted replay must not wait forever on a bag it cannot play
                self.exit_code = 1
                self.context.try_shutdown()
            return
        if p["publish_clock"]:
            self._clock_pub = self.publisher(Clock, "/clock", reliable_qos(10))
            self._clock_msg = Clock()
            self.create_timer(1.0 / max(1.0, float(p["clock_rate_hz"])), self._publish_clock)
        self.diagnostics.set_value("bag", str(p["bag"]))
        self._thread = threading.Thread(target=self._play, name="bag_replay", daemon=True)
        self._thread.start()

    # -- setup
    def _make_publishers(self) -> None:
        p = self.params
        wanted = list(p["topics"]) or sorted(self.info.topics)
        missing = [t for t in wanted if t not in self.info.topics]
        if missing:
            raise ValueError(f"topics {missing} are not in the bag; it has {sorted(self.info.topics)}")
        for topic in wanted:
            msgtype = self.info.topics[topic]
            try:
                cls = message_class(msgtype)
            except (ImportError, AttributeError, ValueError):
                self.warn_input("types", f"{topic}: message type {msgtype} is not installed; not replayed")
                continue
            # Images best effort (sensor data), the rest reliable; depth 10. Per topic, the standard
            # qos_overrides./<topic>.publisher.{reliability,depth,history} parameters change them.
            qos = sensor_qos(10) if msgtype == "sensor_msgs/msg/Image" else reliable_qos(10)
            self._outputs[topic] = self.publisher(cls, self.remaps.get(topic, topic), qos)
        if not self._outputs:
            raise ValueError("no topic of the bag can be replayed")
        self.get_logger().info(
            f"replaying {self.info.path} ({self.info.storage}, {self.info.message_count or '?'} messages) at "
            f"x{self.rate:g}: " + ", ".join(f"{t} -> {pub.topic_name}" for t, pub in self._outputs.items())
        )

    def _wait_for_subscribers(self) -> None:
        want = int(self.params["wait_for_subscribers"])
        if want <= 0:
            return
        images = [t for t in self._outputs if self.info.topics[t] == "sensor_msgs/msg/Image"]
        pub = self._outputs[(images or list(self._outputs))[0]]
        deadline = time.monotonic() + float(self.params["wait_timeout"])
        while pub.get_subscription_count() < want and time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(0.05)

    # -- playback
    def _reader(self, out: queue.Queue[Any]) -> None:
        """Fill ``out`` with the messages in the play window, then ``_END`` (or the read error)."""
        p = self.params
        try:
            with Bag(str(p["bag"])) as bag:
                start = None
                offset_ns = seconds_to_ns(float(p["start_offset"]))
                duration_ns = seconds_to_ns(float(p["duration"]))
                for m in bag.messages(list(self._outputs)):
                    if start is None:
                        start = m.timestamp_ns
                    if m.timestamp_ns - start < offset_ns:
                        continue
                    if duration_ns > 0 and m.timestamp_ns - start - offset_ns > duration_ns:
                        break
                    self._read_ns = m.timestamp_ns
                    while not self._stop.is_set():
                        try:
                            out.put(m, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if self._stop.is_set():
                        return
        except BagReadError as exc:
            out.put(exc)
        out.put(_END)

    def _play(self) -> None:
        time.sleep(max(0.0, float(self.params["start_delay"])))
        self._wait_for_subscribers()
        while not self._stop.is_set():
            q: queue.Queue[Any] = queue.Queue(maxsize=max(1, int(self.params["queue_size"])))
            reader = threading.Thread(target=self._reader, args=(q,), daemon=True)
            reader.start()
            # let the reader fill the queue first: the timeline starts with messages in hand
            deadline = time.monotonic() + 2.0
            while not q.full() and reader.is_alive() and time.monotonic() < deadline:
                time.sleep(0.005)
            sent = self._play_once(q)
            reader.join()
            self.loops += 1
            self.get_logger().info(f"replay pass {self.loops} done: {sent} messages")
            if not self.params["loop"] or sent == 0:
                break
        self._clock_origin = None
        if self.params["exit_when_done"] and not self._stop.is_set():
            self.get_logger().info(f"replay finished: {self.published} messages published")
            self.context.try_shutdown()

    def _play_once(self, q: queue.Queue[Any]) -> int:
        pacer = ReplayPacer(self.rate, self._stop.wait)  # perf_counter, as _publish_clock's origin
        sent = 0
        while not self._stop.is_set():
            item = q.get()
            if item is _END:
                return sent
            if isinstance(item, BagReadError):
                self.warn_input(
                    "bag", f"{item}; replayed the {sent} messages before it", level=ERROR, throttle_s=0.0
                )
                continue
            m: BagMessage = item
            first = pacer.first_ns is None
            due = pacer.due(m.timestamp_ns)
            if first:
                self.bag_start_ns = m.timestamp_ns
                self._clock_origin = (pacer.wall0, m.timestamp_ns)
            if pacer.wait_until(due):
                return sent
            start = time.perf_counter()
            self._outputs[m.topic].publish(m.data)
            self.latency.record(PUBLISH_LAG, (start - due) * 1e3)
            self.latency.record(PUBLISH, (time.perf_counter() - start) * 1e3)
            sent += 1
            self.published += 1
        return sent

    def _publish_clock(self) -> None:
        origin = self._clock_origin
        if origin is None:
            return
        wall0, bag0 = origin
        # Held at the newest message read, as rosbag2's player stops at the end of the bag: a late
        # _END (loaded machine) or a reader behind the schedule must not show a time the bag lacks.
        now = min(bag0 + int((time.perf_counter() - wall0) * self.rate * 1e9), self._read_ns)
        set_time(self._clock_msg.clock, now)
        self._clock_pub.publish(self._clock_msg)

    def on_shutdown(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        lag, pub = self.latency.stats(PUBLISH_LAG), self.latency.stats(PUBLISH)
        if lag is not None and pub is not None:
            self.get_logger().info(
                f"published {self.published} messages; publish lag mean {lag.mean_ms:.3f} ms, "
                f"p99 {lag.p99_ms:.3f} ms, max {lag.max_ms:.3f} ms; publish call mean {pub.mean_ms:.3f} ms, "
                f"max {pub.max_ms:.3f} ms"
            )


def main(args: list[str] | None = None) -> int:
    return run_node(BagReplayNode, args)
