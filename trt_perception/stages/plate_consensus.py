"""Plate consensus stage (ROS-free): one plate text per tracked vehicle, read only when it is worth it.

``PlateConsensus(cfg, reader)(bgr, detections, tracks, stamp_ns) -> ConsensusResult`` per frame:

* **Plates belong to vehicles.** Each plate box (the reader's ``select``: class and size filter) is
  given to the vehicle track whose box contains it (``min_inside`` of its area), one plate per
  vehicle by a minimum-cost assignment (plate centre near the vehicle's lower middle, higher score
  first); the other plate boxes inside a vehicle that has one (nested or duplicate boxes) are dropped.
  Tracks of the plate class itself (a detector without a vehicle class) are their own plates.
* **Tracking-gated reading** (DeepStream's secondary re-inference): a vehicle's plate is read when
  it has no confident consensus yet, when its box area grew by ``reinfer_growth`` since the last
  read, or ``reinfer_interval`` frames after it; the crops of every vehicle due go through the
  reader in one ``read_crops`` call.
* **Consensus** (``vote``): a character-level vote over the vehicle's readings, each character
  weighted by its own probability; readings of another length than the majority's are aligned to
  it by edit distance first (CTC drops or doubles a character; a heads reader pads), so they still
  vote where they agree.
* **Events**: ``final`` once a vehicle's consensus first reaches ``min_confidence`` with
  ``min_agreeing`` identical readings, ``ended`` when its track ends (if it was ever read), each
  with text, confidence, agreeing readings, frames seen, reads, first/last stamp and the best crop.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..metrics.latency import LatencyRecorder
from ..vision.detections import Detections
from .fields import setting
from .plate_reader import PlateReader
from .tracker import Tracks

#: Latency stage of plate-to-vehicle association, gating and cropping.
ASSOCIATE = "associate"
FINAL, ENDED = "final", "ended"


@dataclass
class PlateConsensusConfig:
    min_inside: float = setting(
        0.8, help=("Share of a plate box inside a vehicle box for it to be that vehicle's.")
    )
    reinfer_growth: float = setting(
        0.2,
        help=("Read a vehicle's plate again once its box area grew by this fraction (DeepStream: 20%)."),
    )
    reinfer_interval: int = setting(
        15, help=("Read a vehicle's plate again after this many frames; 0 never.")
    )
    min_confidence: float = setting(
        0.7,
        help=("Consensus confidence from which a vehicle's text is published (and final)."),
    )
    min_agreeing: int = setting(
        3, help=("Identical readings a consensus needs before it is published (and final).")
    )
    max_readings: int = setting(40, help=("Most readings kept per vehicle (the oldest are dropped)."))


@dataclass
class Reading:
    """One reader output: text and each character's probability."""

    text: str
    chars: np.ndarray

    @property
    def confidence(self) -> float:
        return float(self.chars.mean()) if len(self.chars) else 0.0


@dataclass
class Consensus:
    """``confidence``: the weakest position's winning weight over the number of readings (a
    character every reading agrees on at probability 1 scores 1); ``agreeing``: readings equal to it."""

    text: str = ""
    confidence: float = 0.0
    agreeing: int = 0
    readings: int = 0


def align(a: str, b: str) -> list[tuple[int, int]]:
    """Index pairs (i in ``a``, j in ``b``) of a minimum edit-distance alignment (matches and
    substitutions; insertions and deletions pair with nothing)."""
    n, m = len(a), len(b)
    d = np.zeros((n + 1, m + 1), np.int32)
    d[:, 0], d[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (a[i - 1] != b[j - 1]))
    pairs, i, j = [], n, m
    while i > 0 and j > 0:
        if d[i, j] == d[i - 1, j - 1] + (a[i - 1] != b[j - 1]):
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif d[i, j] == d[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def vote(readings: Sequence[Reading]) -> Consensus:
    """Character-level vote: the length most of the confidence agrees on, then per position the
    character with the largest summed probability; other-length readings vote through ``align``."""
    readings = [r for r in readings if r.text]
    if not readings:
        return Consensus(readings=0)
    by_length: dict[int, float] = defaultdict(float)
    for r in readings:
        by_length[len(r.text)] += r.confidence
    length = max(by_length, key=lambda k: (by_length[k], k))
    same = [r for r in readings if len(r.text) == length]
    scores: list[dict[str, float]] = [defaultdict(float) for _ in range(length)]
    for r in same:
        for p, (ch, w) in enumerate(zip(r.text, r.chars.tolist())):
            scores[p][ch] += w
    draft = "".join(max(s, key=s.__getitem__) for s in scores)
    for r in readings:
        if len(r.text) != length:
            for i, p in align(r.text, draft):
                scores[p][r.text[i]] += float(r.chars[i])
    winners = [max(s.items(), key=lambda kv: kv[1]) for s in scores]
    text = "".join(ch for ch, _ in winners)
    confidence = min(w for _, w in winners) / len(readings)
    return Consensus(text, min(confidence, 1.0), sum(r.text == text for r in readings), len(readings))


def plates_to_vehicles(
    vehicles: np.ndarray, plates: np.ndarray, scores: np.ndarray, min_inside: float = 0.8
) -> np.ndarray:
    """Vehicle index per plate, or -1: on no vehicle, or a second (nested, duplicate) box on one.

    ``vehicles`` [V, 4], ``plates`` [P, 4] xyxy; one plate per vehicle, chosen by a minimum-cost
    assignment: a plate sits low and centred on its vehicle, and a higher score is preferred.
    """
    owner = np.full(len(plates), -1, np.intp)
    if not len(vehicles) or not len(plates):
        return owner
    lt = np.maximum(vehicles[:, None, :2], plates[None, :, :2])
    rb = np.minimum(vehicles[:, None, 2:], plates[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = np.maximum((plates[:, 2:] - plates[:, :2]).prod(-1), 1e-9)
    inside = inter / area >= min_inside
    vw = np.maximum(vehicles[:, 2] - vehicles[:, 0], 1e-9)[:, None]
    vh = np.maximum(vehicles[:, 3] - vehicles[:, 1], 1e-9)[:, None]
    off_x = np.abs((plates[:, 0] + plates[:, 2]) / 2 - (vehicles[:, 0, None] + vehicles[:, 2, None]) / 2) / vw
    off_y = np.abs(vehicles[:, 3, None] - plates[:, 3]) / vh
    cost = np.where(inside, off_x + off_y + (1.0 - scores), 1e6)
    if inside.any():
        # lazy: scipy.optimize takes ~1.4 s to import, and every node declares this stage's parameters
        from scipy.optimize import linear_sum_assignment

        v, p = linear_sum_assignment(cost)
        ok = inside[v, p]
        owner[p[ok]] = v[ok]
    return owner


@dataclass
class VehiclePlate:
    """A tracked vehicle's plate in this frame: its box, the consensus so far (``text`` empty until it
    is confident enough to publish) and the track."""

    track_id: int
    box: np.ndarray
    vehicle_box: np.ndarray
    text: str
    confidence: float
    agreeing: int
    final: bool


@dataclass
class PlateEvent:
    kind: str  # FINAL | ENDED
    track_id: int
    text: str
    confidence: float
    agreeing: int
    frames_seen: int
    reads: int
    first_stamp_ns: int
    last_stamp_ns: int
    #: Plate box (xyxy, source pixels) and BGR crop of the most confident reading of the text.
    box: np.ndarray
    crop: np.ndarray

    def to_json(self, frame_id: str = "", jpeg_quality: int = 90) -> str:
        """The event as one JSON object (the ``plate_events`` message), the crop as base64 JPEG."""
        crop = ""
        if self.crop.size:
            ok, jpg = cv2.imencode(".jpg", self.crop, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            crop = base64.b64encode(jpg.tobytes()).decode() if ok else ""
        return json.dumps(
            {
                "event": self.kind,
                "track_id": self.track_id,
                "text": self.text,
                "confidence": round(self.confidence, 4),
                "agreeing": self.agreeing,
                "frames_seen": self.frames_seen,
                "reads": self.reads,
                "first_stamp_ns": self.first_stamp_ns,
                "last_stamp_ns": self.last_stamp_ns,
                "frame_id": frame_id,
                "plate_box": [round(float(v), 1) for v in self.box],
                "crop_jpeg_base64": crop,
            }
        )


@dataclass
class ConsensusResult:
    plates: list[VehiclePlate] = field(default_factory=list)
    events: list[PlateEvent] = field(default_factory=list)
    #: Crops read in this frame (the reader's work) and what each read: (plate box, text).
    reads: int = 0
    readings: list[tuple[np.ndarray, str]] = field(default_factory=list)


@dataclass
class PlateWork:
    """A frame between ``PlateConsensus.gather`` and ``complete``: its vehicles with a plate (track
    ids, vehicle and plate boxes), the tracks that ended, and the plates due for reading (their
    indices into those arrays and their crops, views of the frame)."""

    ids: np.ndarray
    vehicle_boxes: np.ndarray
    plate_boxes: np.ndarray
    ended: np.ndarray
    due: list[int]
    crops: list[np.ndarray]


@dataclass
class _Vehicle:
    first_stamp_ns: int
    last_stamp_ns: int = 0
    frames_seen: int = 0
    reads: int = 0
    read_area: float = 0.0
    read_frame: int = 0
    readings: list[Reading] = field(default_factory=list)
    consensus: Consensus = field(default_factory=Consensus)
    final_sent: bool = False
    best: tuple[float, str, np.ndarray, np.ndarray] | None = None  # confidence, text, box, crop


class PlateConsensus:
    """Per-vehicle plate texts from tracks and detections; reads through ``reader`` (one call a frame)."""

    def __init__(
        self,
        cfg: PlateConsensusConfig,
        reader: PlateReader,
        latency: LatencyRecorder | None = None,
        prefix: str = "",
    ) -> None:
        self.cfg = cfg
        self.reader = reader
        self.latency = latency or reader.latency
        self._name = prefix + ASSOCIATE
        self._vehicles: dict[int, _Vehicle] = {}
        self._frame = 0

    def confident(self, c: Consensus) -> bool:
        return c.confidence >= self.cfg.min_confidence and c.agreeing >= self.cfg.min_agreeing

    def __call__(
        self, bgr: np.ndarray, detections: Detections, tracks: Tracks, stamp_ns: int = 0
    ) -> ConsensusResult:
        work = self.gather(bgr, detections, tracks, stamp_ns)
        readings = self.reader.read_crops(work.crops, per_char=True) if work.crops else []
        return self.complete(work, readings)  # type: ignore[arg-type]

    def gather(self, bgr: np.ndarray, detections: Detections, tracks: Tracks, stamp_ns: int = 0) -> PlateWork:
        """First half of a frame: plates to vehicles, the gating, the crops due (``work.crops``).
        A caller with several cameras reads the crops of all of them in one ``read_crops(...,
        per_char=True)`` call, then hands each camera its share in ``complete``."""
        self._frame += 1
        with self.latency.measure(self._name):
            ids, vboxes, pboxes = self._plates_of_tracks(detections, tracks)
            due = [k for k in range(len(ids)) if self._due(self._seen(int(ids[k]), stamp_ns), pboxes[k])]
            windows = self.reader.crop_boxes(pboxes[due], bgr.shape[1], bgr.shape[0])
            crops = [bgr[y1:y2, x1:x2] for x1, y1, x2, y2 in windows]
            valid = [i for i, c in enumerate(crops) if c.size]
        return PlateWork(
            ids, vboxes, pboxes, tracks.ended, [due[i] for i in valid], [crops[i] for i in valid]
        )

    def complete(self, work: PlateWork, readings: Sequence[tuple[str, float, np.ndarray]]) -> ConsensusResult:
        """Second half: the readings of ``work.crops`` (in order) into the votes, plates and events."""
        events, read = [], []
        for k, crop, (text, _, chars) in zip(work.due, work.crops, readings):
            read.append((work.plate_boxes[k], text))
            event = self._add(int(work.ids[k]), Reading(text, chars), work.plate_boxes[k], crop)
            if event is not None:
                events.append(event)
        plates = [
            self._plate(int(i), p, v) for i, v, p in zip(work.ids, work.vehicle_boxes, work.plate_boxes)
        ]
        events += [self._event(ENDED, int(i)) for i in work.ended if self._ended(int(i))]
        for i in work.ended:
            self._vehicles.pop(int(i), None)
        return ConsensusResult(plates, events, len(work.crops), read)

    def flush(self) -> list[PlateEvent]:
        """End every vehicle still tracked (the stream is over): their ENDED events, state cleared."""
        events = [self._event(ENDED, i) for i in sorted(self._vehicles) if self._ended(i)]
        self._vehicles.clear()
        return events

    def _plates_of_tracks(self, detections: Detections, tracks: Tracks) -> tuple[np.ndarray, ...]:
        """(track ids, vehicle boxes, plate boxes) of the tracks that show a plate in this frame."""
        plates = self.reader.select(detections)
        tdets = tracks.detections
        own = _is_class(tdets, self.reader.cfg.plate_class)
        vehicles = ~own
        owner = plates_to_vehicles(tdets.boxes[vehicles], plates.boxes, plates.scores, self.cfg.min_inside)
        has = owner >= 0
        vidx = np.flatnonzero(vehicles)[owner[has]]
        ids = np.concatenate([tracks.ids[vidx], tracks.ids[own]])
        vboxes = np.concatenate([tdets.boxes[vidx], tdets.boxes[own]])
        pboxes = np.concatenate([plates.boxes[has], tdets.boxes[own]])
        return ids, vboxes, pboxes

    def _seen(self, track_id: int, stamp_ns: int) -> _Vehicle:
        """The vehicle's state, counting this frame as one its plate was seen in."""
        v = self._vehicles.get(track_id)
        if v is None:
            v = self._vehicles[track_id] = _Vehicle(stamp_ns)
        v.frames_seen += 1
        v.last_stamp_ns = stamp_ns
        return v

    def _due(self, v: _Vehicle, box: np.ndarray) -> bool:
        """Whether the plate is read in this frame (DeepStream's re-inference rules + confidence)."""
        cfg = self.cfg
        area = float((box[2] - box[0]) * (box[3] - box[1]))
        return (
            not v.reads
            or not self.confident(v.consensus)
            or area >= v.read_area * (1.0 + cfg.reinfer_growth)
            or (cfg.reinfer_interval > 0 and self._frame - v.read_frame >= cfg.reinfer_interval)
        )

    def _add(self, track_id: int, reading: Reading, box: np.ndarray, crop: np.ndarray) -> PlateEvent | None:
        """Record a reading; the FINAL event when the consensus first becomes confident."""
        v = self._vehicles[track_id]
        v.reads += 1
        v.read_area = float((box[2] - box[0]) * (box[3] - box[1]))
        v.read_frame = self._frame
        v.readings.append(reading)
        del v.readings[: -self.cfg.max_readings]
        v.consensus = vote(v.readings)
        text = v.consensus.text
        if reading.text == text and (v.best is None or v.best[1] != text or reading.confidence > v.best[0]):
            v.best = (reading.confidence, text, box.copy(), crop.copy())
        if v.final_sent or not self.confident(v.consensus):
            return None
        v.final_sent = True
        return self._event(FINAL, track_id)

    def _plate(self, track_id: int, box: np.ndarray, vehicle_box: np.ndarray) -> VehiclePlate:
        c = self._vehicles[track_id].consensus
        ok = self.confident(c)
        return VehiclePlate(track_id, box, vehicle_box, c.text if ok else "", c.confidence, c.agreeing, ok)

    def _ended(self, track_id: int) -> bool:
        v = self._vehicles.get(track_id)
        return v is not None and v.reads > 0

    def _event(self, kind: str, track_id: int) -> PlateEvent:
        v = self._vehicles[track_id]
        c = v.consensus
        if v.best is not None:
            box, crop = v.best[2], v.best[3]
        else:
            box, crop = np.zeros(4, np.float32), np.zeros((0, 0, 3), np.uint8)
        return PlateEvent(
            kind, track_id, c.text, c.confidence, c.agreeing, v.frames_seen, v.reads,
            v.first_stamp_ns, v.last_stamp_ns, box, crop,
        )  # fmt: skip


def _is_class(dets: Detections, name: str) -> np.ndarray:
    """Mask of ``dets`` of class ``name`` (label, or id as text); none when it is unknown."""
    if name in dets.labels:
        return dets.class_ids == dets.labels.index(name)
    if name.lstrip("-").isdigit():
        return dets.class_ids == int(name)
    return np.zeros(len(dets), bool)
