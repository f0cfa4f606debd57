"""The ``tracking`` evaluation task: the deployed chain (detector -> tracker -> per-vehicle plate
consensus) over a sequence in order, scored with MOTA / IDF1 / ID switches (``motmetrics``) on the
vehicles and plate exact match per vehicle beside per reading (``metrics/tracking.py``).

The configuration's ``model`` is the detector; ``reader`` (``evaluate --reader``) adds the plate
reading. ``--option`` values go to the stage config that has the field (detector, tracker, plate
consensus or reader), so ``--option reinfer_interval=1`` reads every vehicle's plate every frame.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..metrics.latency import LatencyRecorder
from ..metrics.tracking import TrackFrame, gt_frames, score_tracking
from ..pipeline.perception import PerceptionPipeline
from ..stages.detector import DetectorConfig
from ..stages.plate_consensus import PlateConsensusConfig
from ..stages.plate_reader import PlateReaderConfig
from ..stages.tracker import TrackerConfig
from .sources import Frame, Source
from .tasks import EvalConfig, Predictor, Task, TaskScores


class TrackingTask(Task):
    name = "tracking"
    primary = "IDF1"

    def __init__(self, reader: Path | None = None) -> None:
        self.reader = reader
        self.vehicle_category = 1

    def bind(self, source: Source) -> None:
        if not any(a.get("track_id") for a in source.coco.get("annotations", [])):
            raise ValueError(f"{source.description}: no annotation carries a 'track_id'")
        names = {name: cid for cid, name in source.category_names().items()}
        self.vehicle_category = names.get("car", 1)

    def build(self, cfg: EvalConfig, latency: LatencyRecorder) -> Predictor:

        configs = stage_configs(cfg, self.reader)
        pipeline = PerceptionPipeline.build(
            configs["detector"], configs["reader"], None, latency, configs["tracker"], configs["consensus"]
        )
        labels = pipeline.detector.labels

        def predict(frame: Frame) -> TrackFrame:
            r = pipeline(frame.bgr, frame.stamp_ns)
            assert r.tracks is not None
            dets = r.tracks.detections
            vehicles = (dets.class_ids == labels.index("car")) if "car" in labels else dets.class_ids >= 0
            texts = {k: p.text for k, p in r.plate_of().items()}
            return TrackFrame(r.tracks.ids[vehicles], dets.boxes[vehicles].astype(float), texts, r.readings)

        return predict

    def score(self, source: Source, outputs: dict[int, Any]) -> TaskScores:
        gt = gt_frames(source.coco, list(outputs), self.vehicle_category)
        metrics = score_tracking(gt, list(outputs.values()))
        order = ["IDF1", "MOTA", "id_switches", "vehicle_exact_match", "frame_exact_match", "reads_per_frame"]
        return TaskScores(metrics, order=order + [k for k in metrics if k not in order])


def stage_configs(cfg: EvalConfig, reader: Path | None) -> dict[str, Any]:
    """Detector, reader (or None), tracker and consensus configs, ``cfg.options`` given to whichever
    stage config has the field (an option none has is an error naming them)."""

    stages: dict[str, tuple[type, dict[str, Any]]] = {
        "detector": (DetectorConfig, {"model": str(cfg.model), "backend": cfg.backend}),
        "reader": (PlateReaderConfig, {"model": str(reader), "backend": cfg.backend}),
        "tracker": (TrackerConfig, {}),
        "consensus": (PlateConsensusConfig, {}),
    }
    known: set[str] = set()
    for cls, base in stages.values():
        names = {f.name for f in dataclasses.fields(cls)} - {"model", "backend"}
        base.update({k: v for k, v in cfg.options.items() if k in names})
        known |= names
    unknown = sorted(set(cfg.options) - known)
    if unknown:
        raise ValueError(f"tracking has no option(s) {unknown}; it has {sorted(known)}")
    out = {key: cls(**base) for key, (cls, base) in stages.items() if key != "reader" or reader}
    out.setdefault("reader", None)
    return out
