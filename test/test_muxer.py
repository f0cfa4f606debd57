"""Muxer: a batch when every active source has a new frame or the timeout passed since the batch's
first frame (a stalled source never blocks the others), sources and stamps kept, drops counted."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from trt_perception.pipeline.muxer import Muxer, MuxSource


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def img(v: int) -> np.ndarray:
    return np.full((2, 2, 3), v, np.uint8)


def test_batch_when_every_source_has_a_frame() -> None:
    clock = FakeClock()
    mux = Muxer([MuxSource("front", "front_cam"), MuxSource("rear", "rear_cam"), "left"], 0.05, clock)
    mux.push(2, img(2), 2000, seq=7)
    mux.push(0, img(0), 1000, seq=3)
    assert mux.poll() is None  # 'rear' has no frame yet and the timeout has not passed
    clock.t += 0.01
    mux.push(1, img(1), 1500, seq=5)
    batch = mux.poll()
    assert batch is not None and batch.size == 3 and batch.fill == 1.0 and not batch.timed_out
    assert [(f.source, f.name, f.frame_id, f.stamp_ns, f.seq) for f in batch.frames] == [
        (0, "front", "front_cam", 1000, 3),
        (1, "rear", "rear_cam", 1500, 5),
        (2, "left", "", 2000, 7),
    ]
    assert int(batch.frames[2].image[0, 0, 0]) == 2
    assert batch.waited_s == pytest.approx(0.01)
    assert mux.poll() is None  # nothing new


def test_a_stalled_source_delays_the_others_by_the_timeout_at_most() -> None:
    clock = FakeClock()
    mux = Muxer(["a", "b", "stalled"], 0.05, clock)
    for step in range(3):
        mux.push(0, img(step), step)
        clock.t += 0.02
        mux.push(1, img(step), step)
        assert mux.poll() is None
        clock.t += 0.031  # 51 ms after the batch's first frame
        batch = mux.poll()
        assert batch is not None and batch.timed_out and batch.size == 2
        assert [f.name for f in batch.frames] == ["a", "b"] and batch.fill == pytest.approx(2 / 3)
    assert mux.drops == [0, 0, 0] and mux.pushed == [3, 3, 0]


def test_drops_count_frames_replaced_before_batching() -> None:
    clock = FakeClock()
    mux = Muxer(["fast", "slow"], 0.1, clock)
    for stamp in (1, 2, 3):
        mux.push(0, img(stamp), stamp)
    mux.push(1, img(9), 9)
    batch = mux.poll()
    assert batch is not None and [f.stamp_ns for f in batch.frames] == [3, 9]  # the newest of each
    assert mux.drops == [2, 0]


def test_an_ended_source_is_not_waited_for_until_it_pushes_again() -> None:
    clock = FakeClock()
    mux = Muxer(["a", "b"], 1.0, clock)
    mux.end(1)
    mux.push(0, img(0), 1)
    batch = mux.poll()
    assert batch is not None and batch.size == 1 and not batch.timed_out
    mux.push(1, img(1), 2)  # reconnected: waited for again
    assert mux.ended == [False, False] and mux.poll() is None
    mux.push(0, img(0), 3)
    batch = mux.poll()
    assert batch is not None and batch.size == 2


def test_next_batch_waits_in_real_time_and_close_wakes_it() -> None:
    mux = Muxer(["a", "stalled"], 0.05)
    got = []

    def consume() -> None:
        while (b := mux.next_batch(2.0)) is not None:
            got.append(b)

    thread = threading.Thread(target=consume)
    thread.start()
    start = time.monotonic()
    for i in range(5):
        mux.push(0, img(i), i)
        time.sleep(0.1)
    mux.close()
    thread.join(2.0)
    assert not thread.is_alive() and time.monotonic() - start < 1.5
    assert [b.frames[0].stamp_ns for b in got] == [0, 1, 2, 3, 4]
    assert all(b.timed_out and 0.05 <= b.waited_s < 0.1 for b in got)
    assert mux.next_batch(0.01) is None


def test_bad_configuration() -> None:
    with pytest.raises(ValueError, match="at least one source"):
        Muxer([])
    with pytest.raises(ValueError, match="names must differ"):
        Muxer(["a", "a"])
    with pytest.raises(ValueError, match="timeout_s"):
        Muxer(["a"], -1.0)
