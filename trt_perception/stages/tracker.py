"""Multi-object tracker stage (ROS-free): ByteTrack-style association of per-frame detections into tracks.

``Tracker(cfg)(detections, stamp_ns) -> Tracks``: the tracked objects of this frame with stable IDs, and
the IDs whose tracks ended. What it matches of ByteTrack (Zhang et al. 2022, reference implementation
``ifzhang/ByteTrack`` ``yolox/tracker/byte_tracker.py``; this is our own code):

* motion model: a constant-velocity Kalman filter with process and measurement noise proportional to
  the box size (ByteTrack's weights: 1/20 for position, 1/160 for velocity); a lost track's size
  velocity is zeroed before it is predicted;
* first association: confirmed tracks (tracked and lost) against the high-score detections, similarity
  IoU x detection score, accepted from ``first_min_similarity`` (ByteTrack: cost 0.8 -> 0.2);
* second association: tracks still unmatched that were tracked in the previous frame against the
  low-score detections (``low_threshold`` <= score < ``high_threshold``), plain IoU >= 0.5; tracks
  left over become lost, and lost ones are removed after ``max_lost_frames`` (``track_buffer``);
* unconfirmed tracks (born in an earlier frame, not yet confirmed) against the leftover high-score
  detections (IoU x score >= 0.3); an unconfirmed track that misses a frame is dropped;
* birth: leftover high-score detections at or above ``new_track_threshold`` (ByteTrack: track_thresh
  + 0.1) start tracks.

Differences, on purpose: the filter's state is the box corners (x1, y1, x2, y2) with noise scaled by
the box width for x and height for y (BoT-SORT's choice, ByteTrack uses centre, aspect and height
scaled by the height): the detections are measured as they come and the predicted boxes are
associated as they are, with no conversion either way. All tracks live in numpy arrays (batched
Kalman predict/update, one IoU matrix per association), classes are kept apart by gating the cost across classes instead of running one
tracker per class, assignment is SciPy's ``linear_sum_assignment`` (a pair is kept only when it reaches
the threshold), a track is confirmed after ``min_hits`` matched frames (ByteTrack: 2, and every track
of the very first frame), IDs are given at confirmation so they stay dense, and the reported box is the
matched detection's (the frame's measurement, which plates are placed in), not the filtered one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..metrics.latency import LatencyRecorder
from ..vision.detections import Detections, class_id
from .fields import about, setting

#: Latency stage name of one tracker update.
TRACK = "track"

TENTATIVE, TRACKED, LOST = 0, 1, 2
_STD_POS, _STD_VEL = 1.0 / 20.0, 1.0 / 160.0
#: A pair that may not be matched (other class, below threshold): finite so the solver always succeeds.
_FORBIDDEN = 1e6


@dataclass
class TrackerConfig:
    """Track birth, confirmation and loss (ByteTrack's defaults where it has the parameter)."""

    high_threshold: float = setting(
        0.5, help=("Detections at or above this score take part in the first association.")
    )
    low_threshold: float = setting(
        0.1,
        help=("Detections from this score up to high_threshold only extend existing tracks."),
    )
    new_track_threshold: float = setting(
        0.6, help=("Least score of an unmatched detection that starts a track.")
    )
    first_min_similarity: float = setting(
        0.2, help=("Least IoU x score of a pair in the first (high-score) association.")
    )
    second_min_iou: float = setting(0.5, help=("Least IoU of a pair in the second (low-score) association."))
    unconfirmed_min_similarity: float = setting(
        0.3, help=("Least IoU x score that extends an unconfirmed track.")
    )
    min_hits: int = setting(2, help=("Matched frames before a track is confirmed and gets an ID."))
    max_lost_frames: int = setting(
        30, help=("Frames a confirmed track survives without a match before it ends.")
    )
    classes: list[str] = field(
        default_factory=list,
        metadata=about(
            help=("Classes to track, by label or id; empty: all (the plate pipeline: all but the plates)."),
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

    ``kf`` [5, N, 4] float64 holds the Kalman filter: the state is the box corners (x1, y1, x2, y2)
    and their velocities. With a diagonal initial covariance, diagonal noise and the four corners
    measured, each coordinate and its velocity form an independent 2x2 block that stays so forever,
    so the 8-D filter is kept as position ``x``, velocity ``v``, and per block the position variance
    ``pp``, covariance ``pv`` and velocity variance ``vv`` (planes 0-4, each a contiguous [N, 4]).
    ``meta`` [N, 5] int64: ID (0 while unconfirmed), class, state, matched frames, last matched frame.
    """

    def __init__(self, kf: np.ndarray | None = None, meta: np.ndarray | None = None) -> None:
        self.kf = np.zeros((5, 0, 4)) if kf is None else kf
        self.meta = np.zeros((0, 5), np.int64) if meta is None else meta
        self.x, self.v = self.kf[0], self.kf[1]
        self.ids, self.cls, self.state, self.hits, self.last_frame = self.meta.T

    def keep(self, mask: np.ndarray) -> _State:
        return _State(self.kf[:, mask], self.meta[mask])

    def extend(self, other: _State) -> _State:
        return _State(np.concatenate([self.kf, other.kf], axis=1), np.concatenate([self.meta, other.meta]))


#: Std devs per unit of box size (width for x, height for y): process noise of position and
#: velocity, measurement noise, initial uncertainty of position and velocity (ByteTrack's weights).
_Q_W = np.array([_STD_POS, _STD_VEL])[:, None, None]
_R_W = _STD_POS
_P0_W = np.array([2 * _STD_POS, 10 * _STD_VEL])[:, None, None]
# Box corners (x1, y1, x2, y2) @ _SIZE = (w, h, w, h): the noise scale of each corner coordinate.
_SIZE = np.array([[-1, 0, -1, 0], [0, -1, 0, -1], [1, 0, 1, 0], [0, 1, 0, 1]], np.float64)
# One frame of constant velocity on the planes (x, v, pp, pv, vv): x += v, pp += 2 pv + vv, pv += vv,
# one matrix product for every track (the process noise is added after).
_STEP = np.array(
    [[1, 1, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 2, 1], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1]], np.float64
)


def _var(x: np.ndarray, weight: np.ndarray | float) -> np.ndarray:
    """Variances (weight * size)^2 per corner coordinate of boxes ``x`` [n, 4], size = (w, h, w, h)
    (at least 1 px): [n, 4] for a scalar weight, [k, n, 4] for a [k, 1, 1] column of weights."""
    size = x @ _SIZE
    np.maximum(size, 1.0, out=size)
    std = size * weight
    std *= std
    return std


def kf_initiate(z: np.ndarray) -> np.ndarray:
    """Filter planes [5, n, 4] of new tracks from their measured boxes ``z`` (xyxy)."""
    kf = np.zeros((5, len(z), 4))
    kf[0] = z
    kf[2::2] = _var(z, _P0_W)  # pp and vv; no velocity and no covariance yet
    return kf


def kf_predict(kf: np.ndarray) -> np.ndarray:
    """The filter one frame ahead: x += v, and per 2x2 block P = F P F^T + Q."""
    out = (_STEP @ kf.reshape(5, -1)).reshape(kf.shape)
    out[2::2] += _var(kf[0], _Q_W)
    return out


def kf_update(kf: np.ndarray, z: np.ndarray, measured: np.ndarray | None = None) -> np.ndarray:
    """Filter planes [5, n, 4] corrected in place with measured boxes ``z`` [n, 4] (a scalar
    measurement per 2x2 block); rows where ``measured`` [n, 1] is 0 get a zero gain (unchanged), so
    all rows are updated at once, without gathering the matched ones."""
    x, v, pp, pv, vv = kf
    s = _var(x, _R_W)
    s += pp
    kp, kv = pp / s, pv / s
    if measured is not None:
        kp *= measured
        kv *= measured
    y = z - x
    x += kp * y
    v += kv * y
    vv -= kv * pv  # before pv changes
    np.subtract(1.0, kp, out=kp)
    pp *= kp
    pv *= kp
    return kf


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU [N, M] of xyxy boxes, float64 (the association's own: in-place, no dtype round trips)."""
    ax1, ay1, ax2, ay2 = np.ascontiguousarray(a.T)[:, :, None]
    bx1, by1, bx2, by2 = np.ascontiguousarray(b.T)
    inter = np.minimum(ax2, bx2)
    inter -= np.maximum(ax1, bx1)
    h = np.minimum(ay2, by2)
    h -= np.maximum(ay1, by1)
    np.maximum(inter, 0.0, out=inter)
    np.maximum(h, 0.0, out=h)
    inter *= h
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1)
    union -= inter
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
    if not np.count_nonzero(ok):
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    cost = np.where(ok, 1.0 - similarity, _FORBIDDEN)
    # lazy: scipy.optimize takes ~1.4 s to import, and every node declares the tracker's parameters
    from scipy.optimize import linear_sum_assignment

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
        self._class: int | None = None  # the one class seen so far, until a second one shows
        self._mixed = False

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
        pred = t.x
        one_class = self._one_class(classes)

        def match(rows: np.ndarray, cols: np.ndarray, threshold: float, fuse: bool) -> np.ndarray:
            """Pairs (track rows, detection indices) of one association step; marks ``det_track``."""
            if not len(rows) or not len(cols):
                return rows[:0]
            every_row, every_col = len(rows) == len(pred), len(cols) == len(boxes)  # no gather needed
            sim = iou(pred if every_row else pred[rows], boxes if every_col else boxes[cols])
            if fuse:
                sim *= scores if every_col else scores[cols]
            same = None if one_class else t.cls[rows][:, None] == classes[cols][None, :]
            r, c = assign(sim, threshold, same)
            det_track[cols[c]] = rows[r]
            return rows[r]

        det_track = np.empty(len(dets), np.intp)  # matched track row per detection
        det_track.fill(-1)
        is_high = scores >= cfg.high_threshold
        high = is_high.nonzero()[0]
        low = (
            high[:0] if len(high) == len(scores) else (~is_high & (scores >= cfg.low_threshold)).nonzero()[0]
        )
        # 1st: confirmed tracks (tracked or lost) x high-score detections, IoU weighted by the score.
        confirmed = (t.state != TENTATIVE).nonzero()[0]
        taken = match(confirmed, high, cfg.first_min_similarity, True)
        # 2nd: tracks of the last frame still free x low-score detections (occluded, blurred), plain IoU.
        if len(low):
            free = t.state == TRACKED
            free[taken] = False
            match(free.nonzero()[0], low, cfg.second_min_iou, False)
        # Unconfirmed tracks x the high-score detections left.
        left = high[det_track[high] < 0]
        if len(left):
            match((t.state == TENTATIVE).nonzero()[0], left, cfg.unconfirmed_min_similarity, True)

        matched = det_track >= 0
        rows = det_track[matched]
        self._correct(t, rows, boxes[matched])
        ids = np.zeros(len(dets), np.int64)
        ids[matched] = t.ids[rows]  # rows are valid until _age drops some
        t, ended = self._age(t)
        born = left[(det_track[left] < 0) & (scores[left] >= cfg.new_track_threshold)] if len(left) else left
        if len(born):
            new = self._birth(boxes[born], classes[born])
            ids[born] = new.ids
            t = t.extend(new)
        self._tracks = t
        out = ids > 0
        if np.count_nonzero(out) == len(out):  # all tracked: no copy
            return Tracks(dets, ids, ended)
        return Tracks(dets.select(out), ids[out], ended)

    def _one_class(self, classes: np.ndarray) -> bool:
        """Whether every detection and track so far is of one class (class gating can be skipped);
        once two classes were seen the tracker gates for good."""
        if not self._mixed and len(classes):
            first = int(classes[0]) if self._class is None else self._class
            # ufunc reductions directly: ndarray.min/max go through Python wrappers (a few us each)
            self._mixed = bool(np.minimum.reduce(classes) != first or np.maximum.reduce(classes) != first)
            self._class = first
        return not self._mixed

    def _predicted(self) -> _State:
        t = self._tracks
        if not len(t.ids):
            return t
        lost = t.state != TRACKED
        if np.count_nonzero(lost):  # a lost box keeps its size: both corners move with the centre
            v = t.v[lost]
            centre = (v[:, :2] + v[:, 2:]) / 2
            t.v[lost] = np.concatenate([centre, centre], axis=1)
        return _State(kf_predict(t.kf), t.meta)

    def _correct(self, t: _State, rows: np.ndarray, boxes: np.ndarray) -> None:
        """Kalman update of the matched rows; an unconfirmed one reaching ``min_hits`` gets its ID."""
        if not len(rows):
            return
        z = t.x.copy()
        z[rows] = boxes
        measured = None
        if len(rows) < len(z):
            measured = np.zeros((len(z), 1))
            measured[rows] = 1.0
        kf_update(t.kf, z, measured)
        m = t.meta[rows]  # one gather and one scatter instead of one per column
        m[:, 3] += 1
        m[:, 4] = self._frame
        m[:, 2] = TRACKED
        unconfirmed = m[:, 0] == 0
        if np.count_nonzero(unconfirmed):
            new = unconfirmed & (m[:, 3] >= self.cfg.min_hits)
            m[new, 0] = self._new_ids(int(np.count_nonzero(new)))
            m[unconfirmed & ~new, 2] = TENTATIVE
        t.meta[rows] = m

    def _age(self, t: _State) -> tuple[_State, np.ndarray]:
        """Unmatched tracked -> lost; unmatched unconfirmed and lost past ``max_lost_frames`` end."""
        missed = t.last_frame < self._frame
        if not np.count_nonzero(missed):  # every track matched: the usual frame
            return t, t.ids[:0]
        t.state[missed & (t.state == TRACKED)] = LOST
        gone = missed & ((t.ids == 0) | (self._frame - t.last_frame > self.cfg.max_lost_frames))
        if not np.count_nonzero(gone):
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
        return _State(kf_initiate(boxes), meta)
