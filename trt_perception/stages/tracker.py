"""Multi-object tracker stage (ROS-free): ByteTrack-style association of per-frame detections into tracks.

``Tracker(cfg)(detections, stamp_ns) -> Tracks``: the tracked objects of this frame with stable IDs, and
the IDs whose tracks ended. What it matches of ByteTrack (Zhang et al. 2022, reference implementation
``ifzhang/ByteTrack`` ``yolox/tracker/byte_tracker.py``; this is our own code):

* motion model: a constant-velocity Kalman filter on (centre x, centre y, aspect w/h, height) with
  process and measurement noise proportional to the box height (weights 1/20 for position, 1/160 for
  velocity); a lost track's height velocity is zeroed before it is predicted;
* first association: confirmed tracks (tracked and lost) against the high-score detections, similarity
  IoU x detection score, accepted from ``first_min_similarity`` (ByteTrack: cost 0.8 -> 0.2);
* second association: tracks still unmatched that were tracked in the previous frame against the
  low-score detections (``low_threshold`` <= score < ``high_threshold``), plain IoU >= 0.5; tracks
  left over become lost, and lost ones are removed after ``max_lost_frames`` (``track_buffer``);
* unconfirmed tracks (born in an earlier frame, not yet confirmed) against the leftover high-score
  detections (IoU x score >= 0.3); an unconfirmed track that misses a frame is dropped;
* birth: leftover high-score detections at or above ``new_track_threshold`` (ByteTrack: track_thresh
  + 0.1) start tracks.

Differences, on purpose: all tracks live in numpy arrays (batched Kalman predict/update, one IoU matrix
per association), classes are kept apart by gating the cost across classes instead of running one
tracker per class, assignment is SciPy's ``linear_sum_assignment`` (a pair is kept only when it reaches
the threshold), a track is confirmed after ``min_hits`` matched frames (ByteTrack: 2, and every track
of the very first frame), IDs are given at confirmation so they stay dense, and the reported box is the
matched detection's (the frame's measurement, which plates are placed in), not the filtered one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..metrics.latency import LatencyRecorder
from ..vision.detections import Detections, class_id

#: Latency stage name of one tracker update.
TRACK = "track"

TENTATIVE, TRACKED, LOST = 0, 1, 2
_STD_POS, _STD_VEL = 1.0 / 20.0, 1.0 / 160.0
#: A pair that may not be matched (other class, below threshold): finite so the solver always succeeds.
_FORBIDDEN = 1e6


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class TrackerConfig:
    """Track birth, confirmation and loss (ByteTrack's defaults where it has the parameter)."""

    high_threshold: float = field(
        default=0.5, metadata=_help("Detections at or above this score take part in the first association.")
    )
    low_threshold: float = field(
        default=0.1,
        metadata=_help("Detections from this score up to high_threshold only extend existing tracks."),
    )
    new_track_threshold: float = field(
        default=0.6, metadata=_help("Least score of an unmatched detection that starts a track.")
    )
    first_min_similarity: float = field(
        default=0.2, metadata=_help("Least IoU x score of a pair in the first (high-score) association.")
    )
    second_min_iou: float = field(
        default=0.5, metadata=_help("Least IoU of a pair in the second (low-score) association.")
    )
    unconfirmed_min_similarity: float = field(
        default=0.3, metadata=_help("Least IoU x score that extends an unconfirmed track.")
    )
    min_hits: int = field(
        default=2, metadata=_help("Matched frames before a track is confirmed and gets an ID.")
    )
    max_lost_frames: int = field(
        default=30, metadata=_help("Frames a confirmed track survives without a match before it ends.")
    )
    classes: list[str] = field(
        default_factory=list,
        metadata=_help(
            "Classes to track, by label or id; empty: all (the plate pipeline: all but the plates)."
        ),
    )


@dataclass
class Tracks:
    """This frame's confirmed, matched tracks: ``detections`` (the matched boxes, scores, classes) with
    their ``ids`` (int64, from 1), and ``ended``: IDs whose tracks ended in this frame."""

    detections: Detections
    ids: np.ndarray
    ended: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.ids)


class _State:
    """Every live track as one row of two arrays (few numpy calls per frame, whatever the count).

    ``kf`` [N, 5, 4] float64 holds the Kalman filter: the state is (cx, cy, w/h, h) and their
    velocities. With a diagonal initial covariance, diagonal noise and the four positions measured,
    each coordinate and its velocity form an independent 2x2 block that stays so forever, so the
    filter is ByteTrack's 8-D one kept as position ``x``, velocity ``v``, and per block the position
    variance ``pp``, covariance ``pv`` and velocity variance ``vv`` (rows 0-4).
    ``meta`` [N, 5] int64: ID (0 while unconfirmed), class, state, matched frames, last matched frame.
    """

    def __init__(self, kf: np.ndarray | None = None, meta: np.ndarray | None = None) -> None:
        self.kf = np.zeros((0, 5, 4)) if kf is None else kf
        self.meta = np.zeros((0, 5), np.int64) if meta is None else meta
        self.x, self.v = self.kf[:, 0], self.kf[:, 1]
        self.ids, self.cls, self.state, self.hits, self.last_frame = self.meta.T

    def keep(self, mask: np.ndarray) -> _State:
        return _State(self.kf[mask], self.meta[mask])

    def extend(self, other: _State) -> _State:
        return _State(np.concatenate([self.kf, other.kf]), np.concatenate([self.meta, other.meta]))


#: Std weights of (cx, cy, aspect, h) per unit of box height (rows: position, velocity) and the
#: aspect's fixed std devs (ByteTrack's): process noise, measurement noise, initial uncertainty.
_SCALED = np.array([1.0, 1.0, 0.0, 1.0])
_Q_W = np.stack([_STD_POS * _SCALED, _STD_VEL * _SCALED])
_Q_C = np.array([[0, 0, 1e-2, 0], [0, 0, 1e-5, 0]])
_R_W, _R_C = _STD_POS * _SCALED, np.array([0, 0, 1e-1, 0])
_P0_W, _P0_C = 2 * _Q_W * [[1], [5]], _Q_C


def xyah(boxes: np.ndarray) -> np.ndarray:
    """xyxy [N, 4] -> (centre x, centre y, w / h, h)."""
    out = np.empty((len(boxes), 4))
    wh = boxes[:, 2:] - boxes[:, :2]
    h = np.maximum(wh[:, 1], 1e-6)
    out[:, :2] = boxes[:, :2] + wh / 2
    out[:, 2] = wh[:, 0] / h
    out[:, 3] = h
    return out


def xyxy(x: np.ndarray) -> np.ndarray:
    """(cx, cy, w/h, h) [N, 4] -> boxes xyxy [N, 4]."""
    half = np.empty((len(x), 2))
    half[:, 1] = x[:, 3] / 2
    half[:, 0] = x[:, 2] * half[:, 1]
    return np.concatenate([x[:, :2] - half, x[:, :2] + half], axis=1)


def _var(h: np.ndarray, weight: np.ndarray, const: np.ndarray) -> np.ndarray:
    """Variances (weight * h + const)^2, broadcast over the rows of ``h``."""
    std = h.reshape((-1,) + (1,) * weight.ndim) * weight + const
    return std * std


def kf_initiate(z: np.ndarray) -> np.ndarray:
    """Filter rows [n, 5, 4] of new tracks from their measurements ``z`` (xyah)."""
    kf = np.zeros((len(z), 5, 4))
    kf[:, 0] = z
    kf[:, 2::2] = _var(z[:, 3], _P0_W, _P0_C)  # pp and vv; no velocity and no covariance yet
    return kf


def kf_predict(kf: np.ndarray) -> None:
    """One frame ahead, in place: x += v, and per 2x2 block P = F P F^T + Q."""
    q = _var(kf[:, 0, 3].copy(), _Q_W, _Q_C)
    kf[:, 0] += kf[:, 1]
    kf[:, 2] += 2 * kf[:, 3] + kf[:, 4]
    kf[:, 3] += kf[:, 4]
    kf[:, 2::2] += q


def kf_update(kf: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``kf`` rows [n, 5, 4] corrected in place with measurements ``z`` [n, 4] (scalar per block)."""
    s = kf[:, 2] + _var(kf[:, 0, 3], _R_W, _R_C)
    gain = kf[:, 2:4] / s[:, None]  # (kp, kv) = (pp, pv) / s
    kf[:, 0:2] += gain * (z - kf[:, 0])[:, None]
    kf[:, 4] -= gain[:, 1] * kf[:, 3]  # vv -= kv pv, before pv changes
    kf[:, 2:4] *= 1.0 - gain[:, :1]  # (pp, pv) *= 1 - kp
    return kf


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU [N, M] of xyxy boxes, float64 (the association's own: in-place, no dtype round trips)."""
    ax1, ay1, ax2, ay2 = a.T[:, :, None]
    bx1, by1, bx2, by2 = b.T
    inter = np.minimum(ax2, bx2)
    inter -= np.maximum(ax1, bx1)
    np.maximum(inter, 0.0, out=inter)
    h = np.minimum(ay2, by2)
    h -= np.maximum(ay1, by1)
    np.maximum(h, 0.0, out=h)
    inter *= h
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1)
    union -= inter
    np.maximum(union, 1e-9, out=union)
    inter /= union
    return inter


def assign(
    similarity: np.ndarray, threshold: float, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the maximum-similarity one-to-one matching, keeping pairs >= ``threshold``
    that ``allowed`` permits (same class; None: all)."""
    ok = similarity >= threshold
    if allowed is not None:
        ok &= allowed
    if not ok.any():
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    cost = np.where(ok, 1.0 - similarity, _FORBIDDEN)
    rows, cols = linear_sum_assignment(cost)
    keep = ok[rows, cols]
    return rows[keep], cols[keep]


class Tracker:
    """``Tracker(cfg)(detections, stamp_ns) -> Tracks``; records its time under ``<prefix>track``."""

    def __init__(
        self, cfg: TrackerConfig | None = None, latency: LatencyRecorder | None = None, prefix: str = ""
    ):
        self.cfg = cfg or TrackerConfig()
        if self.cfg.min_hits < 1 or self.cfg.max_lost_frames < 0:
            raise ValueError("min_hits must be >= 1 and max_lost_frames >= 0")
        self.latency = latency or LatencyRecorder()
        self._name = prefix + TRACK
        self.reset()

    def reset(self) -> None:
        self._tracks = _State()
        self._frame = 0
        self._next_id = 1
        self._keep: np.ndarray | None = None

    def _selected(self, dets: Detections) -> Detections:
        if not self.cfg.classes:
            return dets
        if self._keep is None:  # labels are known with the first frame
            self._keep = np.array([class_id(c, dets.labels) for c in self.cfg.classes], np.int32)
        return dets.select(np.isin(dets.class_ids, self._keep))

    def __call__(self, detections: Detections, stamp_ns: int = 0) -> Tracks:
        with self.latency.measure(self._name):
            return self.update(detections)

    def update(self, detections: Detections) -> Tracks:
        cfg = self.cfg
        self._frame += 1
        dets = self._selected(detections)
        boxes = dets.boxes.astype(np.float64)
        scores, classes = dets.scores, dets.class_ids
        t = self._predicted()
        pred = xyxy(t.x)
        # Class gating only where two classes meet (the common single-class case skips the mask).
        both = np.concatenate([t.cls, classes])
        one_class = not len(both) or both.min() == both.max()

        def match(rows: np.ndarray, cols: np.ndarray, threshold: float, fuse: bool) -> np.ndarray:
            """Pairs (track rows, detection indices) of one association step; marks ``det_track``."""
            if not len(rows) or not len(cols):
                return rows[:0]
            sim = iou(pred[rows], boxes[cols])
            if fuse:
                sim *= scores[cols][None, :]
            same = None if one_class else t.cls[rows][:, None] == classes[cols][None, :]
            r, c = assign(sim, threshold, same)
            det_track[cols[c]] = rows[r]
            return rows[r]

        det_track = np.full(len(dets), -1, np.intp)  # matched track row per detection
        high = np.flatnonzero(scores >= cfg.high_threshold)
        low = np.flatnonzero((scores >= cfg.low_threshold) & (scores < cfg.high_threshold))
        # 1st: confirmed tracks (tracked or lost) x high-score detections, IoU weighted by the score.
        confirmed = np.flatnonzero(t.state != TENTATIVE)
        taken = match(confirmed, high, cfg.first_min_similarity, True)
        # 2nd: tracks of the last frame still free x low-score detections (occluded, blurred), plain IoU.
        if len(low):
            free = t.state == TRACKED
            free[taken] = False
            match(np.flatnonzero(free), low, cfg.second_min_iou, False)
        # Unconfirmed tracks x the high-score detections left.
        left = high[det_track[high] < 0]
        match(np.flatnonzero(t.state == TENTATIVE), left, cfg.unconfirmed_min_similarity, True)

        matched = det_track >= 0
        self._correct(t, det_track[matched], boxes[matched])
        ids = np.zeros(len(dets), np.int64)
        ids[matched] = t.ids[det_track[matched]]  # rows are valid until _age drops some
        t, ended = self._age(t)
        born = left[(det_track[left] < 0) & (scores[left] >= cfg.new_track_threshold)]
        if len(born):
            new = self._birth(boxes[born], classes[born])
            ids[born] = new.ids
            t = t.extend(new)
        self._tracks = t
        out = ids > 0
        return Tracks(dets.select(out), ids[out], ended)

    def _predicted(self) -> _State:
        t = self._tracks
        if len(t.ids):
            t.v[t.state != TRACKED, 3] = 0.0  # a lost box keeps its size
            kf_predict(t.kf)
        return t

    def _correct(self, t: _State, rows: np.ndarray, boxes: np.ndarray) -> None:
        """Kalman update of the matched rows; an unconfirmed one reaching ``min_hits`` gets its ID."""
        if not len(rows):
            return
        t.kf[rows] = kf_update(t.kf[rows], xyah(boxes))
        t.hits[rows] += 1
        t.last_frame[rows] = self._frame
        promote = rows[(t.ids[rows] == 0) & (t.hits[rows] >= self.cfg.min_hits)]
        t.ids[promote] = self._new_ids(len(promote))
        t.state[rows] = np.where(t.ids[rows] > 0, TRACKED, TENTATIVE)

    def _age(self, t: _State) -> tuple[_State, np.ndarray]:
        """Unmatched tracked -> lost; unmatched unconfirmed and lost past ``max_lost_frames`` end."""
        missed = t.last_frame < self._frame
        if not missed.any():  # every track matched: the usual frame
            return t, t.ids[:0]
        t.state[missed & (t.state == TRACKED)] = LOST
        gone = missed & ((t.ids == 0) | (self._frame - t.last_frame > self.cfg.max_lost_frames))
        if not gone.any():
            return t, t.ids[:0]
        return t.keep(~gone), t.ids[gone & (t.ids > 0)]

    def _new_ids(self, n: int) -> np.ndarray:
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        return ids

    def _birth(self, boxes: np.ndarray, classes: np.ndarray) -> _State:
        n = len(boxes)
        # Tracks of the very first frame are confirmed at once (nothing to confuse them with yet).
        now = self.cfg.min_hits <= 1 or self._frame == 1
        meta = np.empty((n, 5), np.int64)
        meta[:, 0] = self._new_ids(n) if now else 0
        meta[:, 1] = classes
        meta[:, 2] = TRACKED if now else TENTATIVE
        meta[:, 3] = 1
        meta[:, 4] = self._frame
        return _State(kf_initiate(xyah(boxes)), meta)
