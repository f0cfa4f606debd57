"""Tracker stage on hand-made box sequences: crossing, occlusion gap, re-entry, low-score extension,
classes kept apart, one-frame false positives, and the Kalman filter against the textbook 8-D form."""

from __future__ import annotations

import numpy as np
import pytest

from trt_perception.stages.tracker import Tracker, TrackerConfig, kf_initiate, kf_predict, kf_update
from trt_perception.vision.detections import Detections

LABELS = ["car", "plate"]


def frame(
    boxes: list[list[float]], scores: list[float] | None = None, classes: list[int] | None = None
) -> Detections:
    n = len(boxes)
    return Detections(
        np.array(boxes, np.float32).reshape(-1, 4),
        np.full(n, 0.9) if scores is None else scores,
        np.zeros(n) if classes is None else classes,
        LABELS,
    )


def car(x: float, y: float = 300.0, w: float = 80.0, h: float = 60.0) -> list[float]:
    return [x, y, x + w, y + h]


def run(tracker: Tracker, frames: list[Detections]) -> list[dict[float, int]]:
    """Per frame: left edge of each tracked box -> its ID."""
    out = []
    for dets in frames:
        t = tracker(dets)
        out.append({round(float(b[0])): int(i) for b, i in zip(t.detections.boxes, t.ids)})
    return out


def test_crossing_cars_keep_their_ids_through_an_occlusion() -> None:
    """A drives right, B left along the same row; while they overlap only the front car (A) is seen.
    The lost B is predicted through the occlusion by its velocity and picked up on the other side."""
    tracker = Tracker()
    frames, seen_b = [], []
    for f in range(60):
        a, b = car(100 + 10 * f), car(700 - 10 * f, y=310)
        overlap = abs(a[0] - b[0]) < 100
        frames.append(frame([a] if overlap else [a, b]))
        seen_b.append(not overlap)
    ids = [tracker(d) for d in frames]
    id_a = {
        int(t.ids[np.argmin(np.abs(t.detections.boxes[:, 0] - (100 + 10 * f)))]) for f, t in enumerate(ids)
    }
    id_b = {
        int(t.ids[np.argmin(np.abs(t.detections.boxes[:, 0] - (700 - 10 * f)))])
        for f, t in enumerate(ids)
        if seen_b[f]
    }
    assert id_a == {1} and id_b == {2}, (id_a, id_b)
    assert not any(len(t.ended) for t in ids)


def test_occlusion_gap_within_the_buffer_keeps_the_id_and_a_longer_one_ends_it() -> None:
    tracker = Tracker(TrackerConfig(max_lost_frames=15))
    boxes = [car(50 + 6 * f) for f in range(80)]
    frames = [frame([] if 20 <= f < 32 else [b]) for f, b in enumerate(boxes)]  # 12 frames hidden
    ids = run(tracker, frames)
    assert {i for d in ids for i in d.values()} == {1}
    assert all(len(d) == 1 for f, d in enumerate(ids) if not 20 <= f < 32)

    tracker = Tracker(TrackerConfig(max_lost_frames=15))
    frames = [frame([] if 20 <= f < 50 else [b]) for f, b in enumerate(boxes)]  # 30 frames hidden
    ended_at = []
    for f, dets in enumerate(frames):
        t = tracker(dets)
        if len(t.ended):
            ended_at.append((f, t.ended.tolist()))
        if f >= 52:  # reconfirmed after min_hits frames under a fresh ID
            assert t.ids.tolist() == [2]
    assert ended_at == [(20 + 15, [1])], "the track ends once, max_lost_frames after its last match"


def test_re_entry_after_leaving_gets_a_new_id() -> None:
    """A car leaves the view to the right and another (or the same) enters from the left later: a
    tracker without appearance cannot know it, so it is a new track; the old one ends exactly once."""
    tracker = Tracker()
    frames = [frame([car(900 + 20 * f)]) for f in range(15)]
    frames += [frame([]) for _ in range(40)]
    frames += [frame([car(20 * f)]) for f in range(15)]
    ended = []
    ids = []
    for dets in frames:
        t = tracker(dets)
        ended += t.ended.tolist()
        ids.append(t.ids.tolist())
    assert ended == [1]
    assert ids[14] == [1] and ids[-1] == [2]


def test_low_score_detections_extend_tracks_but_never_start_one() -> None:
    tracker = Tracker()
    frames = [frame([car(100 + 5 * f)], scores=[0.9 if f < 10 else 0.3]) for f in range(30)]
    ids = run(tracker, frames)
    assert all(list(d.values()) == [1] for d in ids)
    fresh = Tracker()
    assert all(not d for d in run(fresh, [frame([car(100 + 5 * f)], scores=[0.3]) for f in range(10)]))


def test_classes_are_tracked_apart_and_filtered() -> None:
    tracker = Tracker()
    same_place = [frame([car(100 + 4 * f), car(100 + 4 * f)], classes=[0, 1]) for f in range(10)]
    t = None
    for dets in same_place:
        t = tracker(dets)
    assert t is not None and sorted(t.ids.tolist()) == [1, 2]
    assert sorted(t.detections.class_ids.tolist()) == [0, 1]
    cars_only = Tracker(TrackerConfig(classes=["car"]))
    for dets in same_place:
        t = cars_only(dets)
    assert t.ids.tolist() == [1] and t.detections.class_ids.tolist() == [0]


def test_a_one_frame_false_positive_never_gets_an_id() -> None:
    tracker = Tracker()
    frames = [frame([car(100)])] + [
        frame([car(100), car(600)] if f == 5 else [car(100)]) for f in range(1, 12)
    ]
    ids = run(tracker, frames)
    assert {i for d in ids for i in d.values()} == {1}
    assert tracker(frame([car(100), car(600)])).ids.tolist() == [1]  # unconfirmed: no ID yet


@pytest.mark.parametrize("steps", [1, 5])
def test_block_kalman_equals_the_full_8d_filter(steps: int) -> None:
    """The 2x2-block filter gives the same mean and covariance as the 8-D constant-velocity form."""
    rng = np.random.default_rng(3)
    boxes = rng.uniform(50, 400, (6, 2))
    boxes = np.concatenate([boxes, boxes + rng.uniform(20, 120, (6, 2))], axis=1)
    kf = kf_initiate(boxes)
    mean, cov = _full_initiate(boxes)
    for _ in range(steps):
        moved = boxes + rng.normal(0, 3, boxes.shape) + 4
        kf = kf_predict(kf)
        mean, cov = _full_predict(mean, cov)
        kf_update(kf, moved)
        mean, cov = _full_update(mean, cov, moved)
    np.testing.assert_allclose(kf[0], mean[:, :4], rtol=1e-9)
    np.testing.assert_allclose(kf[1], mean[:, 4:], rtol=1e-9, atol=1e-12)
    k = np.arange(4)
    np.testing.assert_allclose(kf[2], cov[:, k, k], rtol=1e-9)
    np.testing.assert_allclose(kf[3], cov[:, k, k + 4], rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(kf[4], cov[:, k + 4, k + 4], rtol=1e-9)


def test_unmeasured_rows_keep_their_state() -> None:
    boxes = np.array([[10, 10, 50, 40], [100, 50, 180, 110], [300, 20, 330, 90]], np.float64)
    kf = kf_predict(kf_initiate(boxes))
    alone = kf_update(kf[:, 1:2].copy(), boxes[1:2] + 3)
    before = kf.copy()
    kf_update(kf, boxes + 3, measured=np.array([[0.0], [1.0], [0.0]]))
    np.testing.assert_array_equal(kf[:, [0, 2]], before[:, [0, 2]])
    np.testing.assert_allclose(kf[:, 1:2], alone)


# The textbook filter, written out with full matrices (box-corner state, noise per unit of box width
# for x and height for y, ByteTrack's weights), for the check above.
_F = np.eye(8)
_F[:4, 4:] = np.eye(4)
_H = np.eye(4, 8)


def _size(x: np.ndarray) -> np.ndarray:
    wh = np.maximum(x[:, 2:4] - x[:, :2], 1.0)
    return np.concatenate([wh, wh], axis=1)


def _diag(std: np.ndarray) -> np.ndarray:
    return np.stack([np.diag(s**2) for s in std])


def _full_initiate(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    size = _size(z)
    return np.concatenate([z, np.zeros_like(z)], axis=1), _diag(np.concatenate([size / 10, size / 16], 1))


def _full_predict(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    size = _size(mean)
    return mean @ _F.T, _F @ cov @ _F.T + _diag(np.concatenate([size / 20, size / 160], 1))


def _full_update(mean: np.ndarray, cov: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = _H @ cov @ _H.T + _diag(_size(mean) / 20)
    k = cov @ _H.T @ np.linalg.inv(s)
    mean = mean + (k @ (z - mean[:, :4])[:, :, None])[:, :, 0]
    return mean, cov - k @ _H @ cov
