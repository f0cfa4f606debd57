"""LatencyRecorder: sliding-window statistics, rate, frame age, thread safety."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from trt_perception.metrics.latency import END_TO_END, FRAME_AGE, INFERENCE, LatencyRecorder


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_statistics_match_numpy() -> None:
    rec = LatencyRecorder(window=1000)
    samples = np.random.default_rng(0).gamma(2.0, 3.0, 500)
    for ms in samples:
        rec.record(INFERENCE, float(ms))
    s = rec.stats(INFERENCE)
    assert s is not None
    assert s.count == s.total_count == 500
    assert s.mean_ms == pytest.approx(samples.mean())
    assert s.std_ms == pytest.approx(samples.std())
    assert (s.min_ms, s.max_ms) == (pytest.approx(samples.min()), pytest.approx(samples.max()))
    for q, v in ((50, s.p50_ms), (95, s.p95_ms), (99, s.p99_ms)):
        assert v == pytest.approx(np.percentile(samples, q))
    assert set(s.as_dict()) >= {"count", "mean_ms", "std_ms", "p95_ms", "rate_hz"}


def test_window_slides_and_total_keeps_counting() -> None:
    rec = LatencyRecorder(window=10)
    for i in range(25):
        rec.record(END_TO_END, float(i))
    s = rec.stats(END_TO_END)
    assert s is not None
    assert s.count == 10 and s.total_count == 25
    assert s.min_ms == 15.0 and s.max_ms == 24.0


def _thirty_hz() -> tuple[LatencyRecorder, FakeClock]:
    """A recorder fed 31 samples at 30 Hz on a fake clock (its rate checked)."""
    clock = FakeClock()
    rec = LatencyRecorder(window=100, clock=clock)
    for _ in range(31):
        rec.record(END_TO_END, 1.0)
        clock.t += 1 / 30
    s = rec.stats(END_TO_END)
    assert s is not None and s.rate_hz == pytest.approx(30.0)
    return rec, clock


def test_rate_from_sample_times() -> None:
    _thirty_hz()


def test_single_sample_has_no_rate_and_unknown_stage_is_none() -> None:
    rec = LatencyRecorder()
    assert rec.stats("nothing") is None
    rec.record("x", 2.0)
    s = rec.stats("x")
    assert s is not None and s.rate_hz == 0.0 and s.std_ms == 0.0


def test_measure_and_frame_age() -> None:
    rec = LatencyRecorder()
    with rec.measure(INFERENCE):
        time.sleep(0.02)
    s = rec.stats(INFERENCE)
    # A 20 ms sleep: never shorter; the upper bound only catches a unit error (s vs ms), not load.
    assert s is not None and 19.0 < s.mean_ms < 2000.0
    assert rec.record_frame_age(stamp_ns=1_000_000_000, now_ns=1_012_500_000) == pytest.approx(12.5)
    assert rec.summary()[FRAME_AGE].mean_ms == pytest.approx(12.5)


def test_measure_records_even_when_the_body_raises() -> None:
    rec = LatencyRecorder()
    with pytest.raises(RuntimeError), rec.measure(INFERENCE):
        raise RuntimeError("boom")
    assert rec.stats(INFERENCE) is not None


def test_summary_keeps_first_recorded_order_and_reset() -> None:
    rec = LatencyRecorder()
    for stage in ("preprocess", "inference", "postprocess"):
        rec.record(stage, 1.0)
    assert list(rec.summary()) == ["preprocess", "inference", "postprocess"]
    rec.reset()
    assert rec.summary() == {}


def test_thread_safe_recording() -> None:
    rec = LatencyRecorder(window=100_000)

    def work() -> None:
        for i in range(2000):
            rec.record(END_TO_END, 1.0)
            if i % 100 == 0:
                rec.stats(END_TO_END)  # reading while others write

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = rec.stats(END_TO_END)
    assert s is not None and s.total_count == 8000


def test_window_must_hold_two_samples() -> None:
    with pytest.raises(ValueError, match="window"):
        LatencyRecorder(window=1)


def test_rate_decays_when_samples_stop() -> None:
    rec, clock = _thirty_hz()
    clock.t += 9.0  # the stream stopped
    s = rec.stats(END_TO_END)
    assert s is not None and s.rate_hz < 3.5


def test_drops_against_frames_received_over_the_frame_age_window() -> None:
    rec = LatencyRecorder(window=4)
    assert rec.drops().ratio == 0.0
    rec.record_dropped(3, at=1.0)  # before any frame: counted while nothing arrived
    assert rec.drops().window_dropped == 3
    for t in (2.0, 3.0, 4.0, 5.0):
        rec.record(FRAME_AGE, 10.0, at=t)
    rec.record_dropped(2, at=4.5)
    d = rec.drops()
    assert (d.window_dropped, d.window_processed, d.total_dropped, d.total_processed) == (2, 4, 5, 4)
    assert d.ratio == 2 / 6
    rec.record(FRAME_AGE, 10.0, at=6.0)  # the window now starts at 3.0: the drop at 4.5 stays in it
    assert rec.drops().window_dropped == 2
    rec.record_dropped(0)  # nothing to count
    rec.reset()
    assert rec.drops() == type(d)(0, 0, 0, 0, 0)


def test_a_frame_that_arrived_but_was_skipped_counts_once() -> None:
    """A paused node drops every frame it gets: 100 % dropped, not 50 % (each frame both arrived and
    dropped)."""
    rec = LatencyRecorder(window=10)
    for t in range(5):
        rec.record(FRAME_AGE, 10.0, at=float(t))
        rec.record_dropped(at=float(t), arrived=True)
    d = rec.drops()
    assert (d.window_dropped, d.window_processed, d.window_sent, d.total_arrived) == (5, 0, 5, 5)
    assert d.ratio == 1.0
    rec.record(FRAME_AGE, 10.0, at=5.0)  # one processed
    rec.record_dropped(2, at=5.5)  # two that never arrived
    d = rec.drops()
    assert (d.window_dropped, d.window_processed, d.total_processed) == (7, 1, 1) and d.ratio == 7 / 8
