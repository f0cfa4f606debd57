"""Muxer (ROS-free): the newest frame of each of N sources, released together as one batch.

Like DeepStream's ``nvstreammux``: each source's capture thread ``push``es its frames; a batch is
released as soon as every active source has a new frame, or ``timeout_s`` after the first frame of the
forming batch arrived (``batched-push-timeout``), whichever comes first, so a stalled camera delays the
others by ``timeout_s`` at most and never blocks them. A source that has ended (``end``) is not waited
for; a push after ``end`` (a reconnect) makes it active again. A frame replaced by a newer one of its
source before it was batched counts in ``drops`` for that source (the consumer is too slow for it).

Every frame keeps its source (index, name, frame_id), capture stamp and sequence number, so each
result goes back to its camera with that camera's header. The clock is injectable (monotonic
seconds): with a fake clock a test calls ``poll()``; ``next_batch()`` waits on the real time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MuxSource:
    """A source as its results are published: ``name`` (e.g. the camera's namespace) and the
    ``frame_id`` of its images' headers."""

    name: str
    frame_id: str = ""


@dataclass(frozen=True)
class SourceFrame:
    """One source's frame in a batch."""

    source: int
    name: str
    frame_id: str
    image: np.ndarray
    stamp_ns: int
    seq: int = -1


@dataclass(frozen=True)
class Batch:
    """Frames of distinct sources (ascending source index) released together."""

    frames: tuple[SourceFrame, ...]
    #: Sources the muxer serves (the batch's capacity).
    sources: int
    #: True when released by the timeout with some active source missing.
    timed_out: bool
    #: Muxer clock at release, and the wait from the batch's first frame to its release (seconds).
    released: float
    waited_s: float

    @property
    def size(self) -> int:
        return len(self.frames)

    @property
    def fill(self) -> float:
        """Share of the sources in this batch (1.0: every camera)."""
        return self.size / self.sources if self.sources else 0.0


class Muxer:
    """``push(source, image, stamp_ns)`` from any thread; ``poll()`` / ``next_batch()`` to consume."""

    def __init__(
        self,
        sources: Sequence[MuxSource | str],
        timeout_s: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not sources:
            raise ValueError("a muxer needs at least one source")
        if timeout_s < 0:
            raise ValueError(f"timeout_s must be >= 0, got {timeout_s}")
        self.sources = [s if isinstance(s, MuxSource) else MuxSource(s) for s in sources]
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must differ, got {names}")
        self.timeout_s = timeout_s
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: list[SourceFrame | None] = [None] * len(self.sources)
        self._first: float | None = None  # clock when the forming batch got its first frame
        self._ended = [False] * len(self.sources)
        self._drops = [0] * len(self.sources)
        self._pushed = [0] * len(self.sources)
        self._closed = False

    # -- producers
    def push(
        self, source: int, image: np.ndarray, stamp_ns: int, seq: int = -1, frame_id: str | None = None
    ) -> None:
        """The newest frame of ``source``; replaces (and counts as dropped) one not yet batched.
        ``frame_id``: the frame's own (an image message's header) instead of the source's."""
        s = self.sources[source]
        frame = SourceFrame(
            source, s.name, s.frame_id if frame_id is None else frame_id, image, stamp_ns, seq
        )
        with self._cond:
            if self._pending[source] is not None:
                self._drops[source] += 1
            elif self._first is None:
                self._first = self._clock()
            self._pending[source] = frame
            self._pushed[source] += 1
            self._ended[source] = False
            self._cond.notify_all()

    def end(self, source: int) -> None:
        """``source`` delivers no more frames (stopped, failed, finished): batches stop waiting for it."""
        with self._cond:
            self._ended[source] = True
            self._cond.notify_all()

    def close(self) -> None:
        """Wake and end every ``next_batch`` wait."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- consumer
    def poll(self) -> Batch | None:
        """The batch when it is due now (every active source has a frame, or the timeout passed)."""
        with self._cond:
            return self._release(self._clock())

    def next_batch(self, timeout_s: float | None = None) -> Batch | None:
        """Wait (real time) for the next batch; None after ``timeout_s`` or once closed."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while not self._closed:
                now = self._clock()
                batch = self._release(now)
                if batch is not None:
                    return batch
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                due = None if self._first is None else self._first + self.timeout_s - now
                waits = [w for w in (left, due) if w is not None]
                self._cond.wait(max(min(waits), 1e-4) if waits else None)
            return None

    @property
    def drops(self) -> list[int]:
        """Frames per source replaced before they were batched."""
        with self._cond:
            return list(self._drops)

    @property
    def pushed(self) -> list[int]:
        """Frames per source pushed so far."""
        with self._cond:
            return list(self._pushed)

    @property
    def ended(self) -> list[bool]:
        with self._cond:
            return list(self._ended)

    def _release(self, now: float) -> Batch | None:
        if self._first is None:
            return None
        waiting = [p is None and not e for p, e in zip(self._pending, self._ended)]
        waited = now - self._first
        timed_out = waited >= self.timeout_s
        if any(waiting) and not timed_out:
            return None
        frames = tuple(p for p in self._pending if p is not None)
        self._pending = [None] * len(self.sources)
        self._first = None
        return Batch(frames, len(self.sources), any(waiting), now, waited)
