"""Stages chained in one process on numpy frames: an ordered list of steps, each filling its part of
one ``PipelineResult`` (detector -> tracker -> plate consensus or plate reader -> segmenter).

What DeepStream does with one GStreamer pipeline: frames never leave the process, only results are
published. A cross-process hop of a 720p image costs ~6-8 ms in Python, more than a small model's
inference, so this is the fast path; the separate nodes stay for users who compose their own graphs.

A user chains what they need: ``PerceptionPipeline([DetectStep(det), TrackStep(tracker)])`` tracks
without reading, ``[DetectStep(det), ReadStep(reader)]`` reads every plate of every frame, and
``build(...)`` assembles the usual chain from stage configs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from ..metrics.latency import END_TO_END, LatencyRecorder
from ..stages.detector import Detector, DetectorConfig
from ..stages.plate_consensus import PlateConsensus, PlateConsensusConfig, PlateEvent, VehiclePlate
from ..stages.plate_reader import PlateReader, PlateReaderConfig, PlateReading
from ..stages.segmenter import Segmenter
from ..stages.tracker import Tracker, TrackerConfig, Tracks
from ..vision.detections import Detections

DETECTOR, PLATE_READER, SEGMENTER, TRACKER, CONSENSUS = (
    "detector.",
    "plate_reader.",
    "segmenter.",
    "tracker.",
    "plate_consensus.",
)


@dataclass
class PipelineResult:
    stamp_ns: int
    detections: Detections
    #: Plate texts of this frame: every reading (ReadStep), or each tracked vehicle's consensus once
    #: it is confident (ConsensusStep: ``VehiclePlate`` with ``track_id``).
    plates: list[PlateReading] | list[VehiclePlate] = field(default_factory=list)
    #: The segmenter's result (``SegmentationResult``) when that stage is on.
    segmentation: Any = None
    #: Wall time of the whole chain for this frame.
    latency_ms: float = 0.0
    #: Tracked objects with IDs (TrackStep), and the per-vehicle plate events of this frame.
    tracks: Tracks | None = None
    events: list[PlateEvent] = field(default_factory=list)
    #: Plate crops the reader read in this frame, and each reading: (plate box, text).
    reads: int = 0
    readings: list[tuple[np.ndarray, str]] = field(default_factory=list)

    def plate_of(self) -> dict[int, VehiclePlate]:
        """Track ID -> its published plate (consensus steps only)."""
        return {p.track_id: p for p in self.plates if isinstance(p, VehiclePlate)}


class Step(Protocol):
    """One link of the chain: reads the frame and what earlier steps put in ``result``, adds its own."""

    def __call__(self, bgr: np.ndarray, result: PipelineResult) -> None: ...

    def warmup(self) -> None: ...


class DetectStep:
    def __init__(self, detector: Detector) -> None:
        self.stage = detector

    def __call__(self, bgr: np.ndarray, result: PipelineResult) -> None:
        result.detections = self.stage(bgr, result.stamp_ns)

    def warmup(self) -> None:
        self.stage.warmup()


class TrackStep:
    def __init__(self, tracker: Tracker) -> None:
        self.stage = tracker

    def __call__(self, bgr: np.ndarray, result: PipelineResult) -> None:
        result.tracks = self.stage(result.detections, result.stamp_ns)

    def warmup(self) -> None:
        """Nothing to warm; a tracker keeps no state from warm-up frames."""


class ReadStep:
    """Every plate box of every frame through the reader (no tracking)."""

    def __init__(self, reader: PlateReader) -> None:
        self.stage = reader

    def __call__(self, bgr: np.ndarray, result: PipelineResult) -> None:
        result.plates = self.stage(bgr, result.detections, result.stamp_ns)
        result.reads = len(self.stage.select(result.detections))  # crops read, not only readings kept
        result.readings = [(r.box, r.text) for r in result.plates]

    def warmup(self) -> None:
        self.stage.engine.warmup()


class ConsensusStep:
    """Per-vehicle plate consensus on the tracks of a TrackStep before it (gated reading)."""

    def __init__(self, consensus: PlateConsensus) -> None:
        self.stage = consensus

    def __call__(self, bgr: np.ndarray, result: PipelineResult) -> None:
        if result.tracks is None:
            raise ValueError("ConsensusStep needs a TrackStep before it")
        out = self.stage(bgr, result.detections, result.tracks, result.stamp_ns)
        result.plates = [p for p in out.plates if p.text]
        result.events, result.reads, result.readings = out.events, out.reads, out.readings

    def warmup(self) -> None:
        self.stage.reader.engine.warmup()


class SegmentStep:
    def __init__(self, segmenter: Any) -> None:
        self.stage = segmenter

    def __call__(self, bgr: np.ndarray, result: PipelineResult) -> None:
        result.segmentation = self.stage(bgr, result.stamp_ns)

    def warmup(self) -> None:
        self.stage.warmup()


class PerceptionPipeline:
    """``PerceptionPipeline(steps)(bgr, stamp_ns) -> PipelineResult``: the steps run in order.

    Stage latencies land in one recorder under ``detector.*``, ``tracker.*``, ``plate_reader.*``,
    ``plate_consensus.*``, ``segmenter.*``, the chain's own time under ``end_to_end``.
    """

    def __init__(self, steps: Sequence[Step], latency: LatencyRecorder | None = None) -> None:
        if not steps or not isinstance(steps[0], DetectStep):
            raise ValueError("a perception pipeline starts with a DetectStep")
        self.steps = list(steps)
        self.latency = latency or self.detector.latency

    @classmethod
    def build(
        cls,
        detector: DetectorConfig,
        plate_reader: PlateReaderConfig | None = None,
        segmenter: Any = None,
        latency: LatencyRecorder | None = None,
        tracker: TrackerConfig | None = None,
        consensus: PlateConsensusConfig | None = None,
    ) -> PerceptionPipeline:
        """Steps from stage configs; ``segmenter`` is a ``SegmenterConfig``. With ``tracker`` the
        detections are tracked (by default every class but the plates, which then belong to their
        vehicles; the plates themselves where the detector knows no other class) and a reader reads
        per vehicle (``consensus``, defaults when None); without it the reader reads every plate."""
        latency = latency or LatencyRecorder()
        det = Detector(detector, latency, prefix=DETECTOR)
        steps: list[Step] = [DetectStep(det)]
        reader = PlateReader(plate_reader, latency, prefix=PLATE_READER) if plate_reader else None
        if tracker is not None:
            plate_class = plate_reader.plate_class if plate_reader else ""
            steps.append(
                TrackStep(Tracker(_track_classes(tracker, det.labels, plate_class), latency, TRACKER))
            )
            if reader is not None:
                stage = PlateConsensus(consensus or PlateConsensusConfig(), reader, latency, CONSENSUS)
                steps.append(ConsensusStep(stage))
        elif reader is not None:
            steps.append(ReadStep(reader))
        if segmenter is not None:
            steps.append(SegmentStep(Segmenter(segmenter, latency, prefix=SEGMENTER)))
        return cls(steps, latency)

    def _stage(self, kind: type) -> Any:
        return next((s.stage for s in self.steps if isinstance(s, kind)), None)  # type: ignore[attr-defined]

    @property
    def detector(self) -> Detector:
        return self._stage(DetectStep)

    @property
    def tracker(self) -> Tracker | None:
        return self._stage(TrackStep)

    @property
    def plate_reader(self) -> PlateReader | None:
        consensus = self._stage(ConsensusStep)
        return consensus.reader if consensus is not None else self._stage(ReadStep)

    @property
    def segmenter(self) -> Any:
        return self._stage(SegmentStep)

    def __call__(self, bgr: np.ndarray, stamp_ns: int = 0) -> PipelineResult:
        start = time.perf_counter()
        result = PipelineResult(stamp_ns, Detections.empty())
        for step in self.steps:
            step(bgr, result)
        result.latency_ms = (time.perf_counter() - start) * 1e3
        self.latency.record(END_TO_END, result.latency_ms)
        return result

    def warmup(self) -> None:
        for step in self.steps:
            step.warmup()

    def flush(self) -> list[PlateEvent]:
        """At the end of the stream: the ENDED events of the vehicles still tracked."""
        consensus = self._stage(ConsensusStep)
        return consensus.flush() if consensus is not None else []


def _track_classes(cfg: TrackerConfig, labels: list[str], plate_class: str) -> TrackerConfig:
    """The tracker's classes when the config names none: the vehicles (every label but the plate's),
    or the plates where there is nothing else."""
    if cfg.classes or not labels:  # unlabelled classes: track them all
        return cfg
    others = [name for name in labels if name != plate_class]
    return replace(cfg, classes=others or [plate_class])
