"""Pairs two message streams by header stamp with bounded queues (message_filters' job, ROS-free).

Used by the plate reader where ``message_filters`` is not importable: images and detections arrive
separately; a pair is released as soon as both sides hold a stamp within ``slop_ns`` of each other.
Older unmatched entries are dropped, so memory stays bounded whatever arrives.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class StampMatcher:
    """``add("a"|"b", stamp_ns, item) -> (item_a, item_b, stamp_ns) | None``."""

    def __init__(self, queue_size: int = 10, slop_ns: int = 0) -> None:
        if queue_size <= 0:
            raise ValueError(f"queue_size must be positive, got {queue_size}")
        self.queue_size = queue_size
        self.slop_ns = slop_ns
        self._queues: dict[str, OrderedDict[int, Any]] = {"a": OrderedDict(), "b": OrderedDict()}
        self._lock = threading.Lock()
        self.dropped = 0
        self.matched = 0

    def add(self, side: str, stamp_ns: int, item: Any) -> tuple[Any, Any, int] | None:
        other = "b" if side == "a" else "a"
        with self._lock:
            mine, theirs = self._queues[side], self._queues[other]
            match = self._closest(theirs, stamp_ns)
            if match is None:
                mine[stamp_ns] = item
                while len(mine) > self.queue_size:
                    mine.popitem(last=False)
                    self.dropped += 1
                return None
            partner = theirs.pop(match)
            # Everything older than the match on either side can no longer pair: drop it.
            for q in (mine, theirs):
                for s in [s for s in q if s <= max(stamp_ns, match)]:
                    del q[s]
                    self.dropped += 1
            self.matched += 1
        pair = (item, partner) if side == "a" else (partner, item)
        return pair[0], pair[1], stamp_ns

    def _closest(self, queue: OrderedDict[int, Any], stamp_ns: int) -> int | None:
        if stamp_ns in queue:
            return stamp_ns
        if self.slop_ns <= 0 or not queue:
            return None
        best = min(queue, key=lambda s: abs(s - stamp_ns))
        return best if abs(best - stamp_ns) <= self.slop_ns else None

    def pending(self) -> tuple[int, int]:
        with self._lock:
            return len(self._queues["a"]), len(self._queues["b"])
