"""Stages chained in one process on numpy frames: detector -> plate reader (-> segmenter).

What DeepStream does with one GStreamer pipeline: frames never leave the process, only results are
published. A cross-process hop of a 720p image costs ~6-8 ms in Python, more than a small model's
inference, so this is the fast path; the separate nodes stay for users who compose their own graphs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..metrics.latency import END_TO_END, LatencyRecorder
from ..stages.detector import Detector, DetectorConfig
from ..stages.plate_reader import PlateReader, PlateReaderConfig, PlateReading
from ..vision.detections import Detections

DETECTOR, PLATE_READER, SEGMENTER = "detector.", "plate_reader.", "segmenter."


@dataclass
class PipelineResult:
    stamp_ns: int
    detections: Detections
    plates: list[PlateReading] = field(default_factory=list)
    #: The segmenter's result (``SegmentationResult``) when that stage is on.
    segmentation: Any = None
    #: Wall time of the whole chain for this frame.
    latency_ms: float = 0.0


class PerceptionPipeline:
    """``PerceptionPipeline(detector, reader, segmenter)(bgr, stamp_ns) -> PipelineResult``.

    Stage latencies land in one recorder under ``detector.*``, ``plate_reader.*``, ``segmenter.*``,
    the chain's own time under ``end_to_end``.
    """

    def __init__(
        self,
        detector: Detector,
        plate_reader: PlateReader | None = None,
        segmenter: Any = None,
        latency: LatencyRecorder | None = None,
    ) -> None:
        self.detector = detector
        self.plate_reader = plate_reader
        self.segmenter = segmenter
        self.latency = latency or detector.latency

    @classmethod
    def build(
        cls,
        detector: DetectorConfig,
        plate_reader: PlateReaderConfig | None = None,
        segmenter: Any = None,
        latency: LatencyRecorder | None = None,
    ) -> PerceptionPipeline:
        """Stages from their configs; ``segmenter`` is a ``SegmenterConfig`` (segmentation stage)."""
        latency = latency or LatencyRecorder()
        det = Detector(detector, latency, prefix=DETECTOR)
        reader = PlateReader(plate_reader, latency, prefix=PLATE_READER) if plate_reader else None
        seg = None
        if segmenter is not None:
            from ..stages.segmenter import Segmenter

            seg = Segmenter(segmenter, latency, prefix=SEGMENTER)
        return cls(det, reader, seg, latency)

    def __call__(self, bgr: np.ndarray, stamp_ns: int = 0) -> PipelineResult:
        start = time.perf_counter()
        dets = self.detector(bgr, stamp_ns)
        plates = self.plate_reader(bgr, dets, stamp_ns) if self.plate_reader is not None else []
        seg = self.segmenter(bgr, stamp_ns) if self.segmenter is not None else None
        ms = (time.perf_counter() - start) * 1e3
        self.latency.record(END_TO_END, ms)
        return PipelineResult(stamp_ns, dets, plates, seg, ms)

    def warmup(self) -> None:
        self.detector.warmup()
        if self.plate_reader is not None:
            self.plate_reader.engine.warmup()
        if self.segmenter is not None:
            self.segmenter.warmup()
