"""Per-stage latency over a sliding window: the numbers every node reports on ``/diagnostics``.

ROS-free. A stage records milliseconds under a name (``preprocess``, ``inference``, ``postprocess``,
``end_to_end``, ``frame_age`` by convention); ``stats`` summarises the window the way rqt and the
benchmark reports read it (count, mean, std, min, max, p50, p95, p99, rate in Hz).

Input frames also count what was never processed: ``record_dropped`` adds frames the publisher sent
that never arrived (a gap in the publisher's sequence numbers: lost in transport, or overwritten in a
full subscription queue while the node was busy) and, with ``arrived=True``, frames that arrived (their
``frame_age`` recorded) but were skipped (paused, no model, bad encoding). ``drops`` sets them against
the frames processed over the ``frame_age`` window, each sent frame counted once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np

PREPROCESS = "preprocess"
INFERENCE = "inference"
POSTPROCESS = "postprocess"
END_TO_END = "end_to_end"
FRAME_AGE = "frame_age"


@dataclass(frozen=True)
class StageStats:
    """Summary of one stage's window; times in milliseconds, rate in samples per second."""

    count: int
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rate_hz: float
    total_count: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def describe(ms: Sequence[float] | np.ndarray) -> dict[str, float]:
    """The one summary of a latency sample (ms): count, mean, std, min, max, median, p10/p95/p99
    and FPS (1000 / mean); empty for no samples. Every report (nodes, evaluation, benches) reads it."""
    a = np.asarray(ms, dtype=np.float64)
    if a.size == 0:
        return {}
    mean = float(a.mean())
    p10, p95, p99 = np.percentile(a, [10, 95, 99])
    return {
        "count": int(a.size),
        "mean_ms": mean,
        "std_ms": float(a.std()),
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
        "median_ms": float(np.median(a)),
        "p10_ms": float(p10),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "fps": 1e3 / mean if mean > 0 else float("inf"),
    }


def _rate(times: np.ndarray, now: float) -> float:
    """Samples per second over the window; decays once samples stop (a stalled stage reads ~0 Hz,
    not its last rate): after more than two typical intervals of silence the span runs up to now."""
    n = len(times)
    span = times[-1] - times[0]
    if n < 2 or span <= 0:
        return 0.0
    if now - times[-1] > 2.0 * span / (n - 1):
        span = now - times[0]
    return (n - 1) / span


@dataclass(frozen=True)
class DropStats:
    """Input frames dropped (never processed) against frames processed, over the ``frame_age`` window
    (``window_*``) and since the start (``total_*``); ``total_arrived``: frames that arrived at all."""

    window_dropped: int
    window_processed: int
    total_dropped: int
    total_processed: int
    total_arrived: int

    @property
    def window_sent(self) -> int:
        return self.window_dropped + self.window_processed

    @property
    def ratio(self) -> float:
        """Dropped share of the frames sent over the window (0 when nothing was sent)."""
        return self.window_dropped / self.window_sent if self.window_sent else 0.0


class LatencyRecorder:
    """Thread-safe sliding windows of latency samples, one per named stage.

    ``total_count`` keeps counting after the window is full, so a reader can tell a stalled stage
    (total unchanged) from a slow one.
    """

    def __init__(self, window: int = 300, clock: Callable[[], float] | None = None) -> None:
        if window < 2:
            raise ValueError(f"latency window must hold at least 2 samples, got {window}")
        self._window = window
        self._clock: Callable[[], float] = clock or time.monotonic
        self._samples: dict[str, deque[tuple[float, float]]] = {}
        self._totals: dict[str, int] = {}
        self._drops: deque[tuple[float, int, bool]] = deque(maxlen=window)
        self._dropped_total = 0
        self._arrived_dropped_total = 0
        self._lock = threading.Lock()

    @property
    def window(self) -> int:
        return self._window

    def record(self, stage: str, ms: float, at: float | None = None) -> None:
        """Add one sample of ``ms`` milliseconds to ``stage``, observed at monotonic time ``at``."""
        t = self._clock() if at is None else at
        with self._lock:
            samples = self._samples.get(stage)
            if samples is None:
                samples = self._samples[stage] = deque(maxlen=self._window)
            samples.append((t, float(ms)))
            self._totals[stage] = self._totals.get(stage, 0) + 1

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        """Record the wall time of the ``with`` body under ``stage``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.record(stage, (time.perf_counter() - start) * 1e3)

    def record_frame_age(self, stamp_ns: int, now_ns: int) -> float:
        """Record receive time minus the image's header stamp (both ROS time in ns); returns ms."""
        age_ms = (now_ns - stamp_ns) * 1e-6
        self.record(FRAME_AGE, age_ms)
        return age_ms

    def record_dropped(self, count: int = 1, at: float | None = None, arrived: bool = False) -> None:
        """``count`` input frames that were sent but never processed; ``arrived``: they did arrive (their
        frame age is recorded), so they are not counted as processed either (see the module doc)."""
        if count <= 0:
            return
        t = self._clock() if at is None else at
        with self._lock:
            self._drops.append((t, int(count), arrived))
            self._dropped_total += int(count)
            self._arrived_dropped_total += int(count) if arrived else 0

    def drops(self) -> DropStats:
        """Dropped against received input frames; the window is the ``frame_age`` one (drops since its
        oldest sample), or every remembered drop while no frame arrived."""
        with self._lock:
            ages = self._samples.get(FRAME_AGE)
            since = ages[0][0] if ages else float("-inf")
            recent = [(n, arrived) for t, n, arrived in self._drops if t >= since]
            arrived_total = self._totals.get(FRAME_AGE, 0)
            return DropStats(
                window_dropped=sum(n for n, _ in recent),
                window_processed=max(0, (len(ages) if ages else 0) - sum(n for n, a in recent if a)),
                total_dropped=self._dropped_total,
                total_processed=max(0, arrived_total - self._arrived_dropped_total),
                total_arrived=arrived_total,
            )

    def stages(self) -> list[str]:
        with self._lock:
            return list(self._samples)

    def stats(self, stage: str) -> StageStats | None:
        with self._lock:
            samples = self._samples.get(stage)
            if not samples:
                return None
            data = np.array(samples, dtype=np.float64)
            total = self._totals[stage]
        times, ms = data[:, 0], data[:, 1]
        d = describe(ms)
        return StageStats(
            count=len(ms),
            mean_ms=d["mean_ms"],
            std_ms=d["std_ms"],
            min_ms=d["min_ms"],
            max_ms=d["max_ms"],
            p50_ms=d["median_ms"],
            p95_ms=d["p95_ms"],
            p99_ms=d["p99_ms"],
            rate_hz=float(_rate(times, self._clock())),
            total_count=total,
        )

    def summary(self) -> dict[str, StageStats]:
        """Stats of every stage that has samples, in first-recorded order."""
        out = {}
        for stage in self.stages():
            s = self.stats(stage)
            if s is not None:
                out[stage] = s
        return out

    def reset(self) -> None:
        with self._lock:
            self._samples.clear()
            self._totals.clear()
            self._drops.clear()
            self._dropped_total = 0
            self._arrived_dropped_total = 0
