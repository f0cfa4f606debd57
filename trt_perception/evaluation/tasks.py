"""What "run a model on a frame" and "score the run" mean per task.

A ``Task`` builds a predictor for one configuration (the real stage: ``Detector``, ``PlateReader``,
``Segmenter``, ``Pilot``, so the evaluated code is the deployed code), keeps each frame's output in a
compact form, and turns the collected outputs into metrics against the source's ground truth.

The ``tracking`` task runs the deployed chain (detector -> tracker -> per-vehicle plate consensus) over
a sequence in order, scored with MOTA / IDF1 / ID switches (``motmetrics``) on the vehicles and plate
exact match per vehicle beside per reading (``metrics/tracking.py``). Its configuration's ``model`` is
the detector; ``reader`` (``evaluate --reader``) adds the plate reading. ``--option`` values go to the
stage config that has the field (detector, tracker, plate consensus or reader), so
``--option reinfer_interval=1`` reads every vehicle's plate every frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..inference.engine import EngineError
from ..inference.factory import open_engine
from ..io.files import model_size_bytes
from ..metrics.coco import DEFAULT_CONF_THRESHOLD, detections_to_coco, evaluate_coco
from ..metrics.latency import LatencyRecorder
from ..metrics.plates import match_readings, score_plates
from ..metrics.segmentation import confusion_matrix, iou_per_class, mean_iou
from ..metrics.tracking import TrackFrame, gt_frames, score_tracking
from ..modelops.precision import resize_preprocess
from ..pipeline.perception import PerceptionPipeline
from ..stages.detector import Detector, DetectorConfig
from ..stages.pilot import Pilot, PilotConfig
from ..stages.plate_consensus import PlateConsensusConfig
from ..stages.plate_reader import PlateReader, PlateReaderConfig
from ..stages.segmenter import Segmenter, SegmenterConfig
from ..stages.tracker import TrackerConfig
from .sources import Frame, Source

TASKS = ("detection", "plates", "segmentation", "regression", "tracking")


@dataclass
class EvalConfig:
    """One column of the report: a model file on a backend at a precision (+ stage options)."""

    name: str
    model: Path
    backend: str = "auto"
    precision: str = "fp32"
    #: Stage config overrides (e.g. ``decoder``, ``preprocess``, ``charset``), by field name.
    options: dict[str, Any] = field(default_factory=dict)
    #: plates: a detector model makes the run end-to-end (detect, then read); else GT crops are read.
    detector: Path | None = None

    def __post_init__(self) -> None:
        self.model = Path(self.model)

    @property
    def size_mb(self) -> float:
        return model_size_bytes(self.model) / 2**20 if self.model.is_file() else float("nan")


@dataclass
class TaskScores:
    metrics: dict[str, float]  # flat, report-ready (fractions, not percent)
    #: name -> (x, y) curves for plots (precision-recall per class).
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: metric keys in the order the report shows them, primary first
    order: list[str] = field(default_factory=list)


Predictor = Callable[[Frame], Any]


def _stage_config(cls: type, base: dict[str, Any], options: dict[str, Any]) -> Any:
    """``cls(**base, **options)`` with a clear error for an option the stage does not have."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no option(s) {unknown}; it has {sorted(names)}")
    return cls(**{**base, **options})


class Task:
    name = "task"
    #: the metric whose change against the reference the summary headline quotes
    primary = ""
    higher_is_better = True
    #: whether frames need their ground-truth class masks (decoding them costs time)
    needs_masks = False
    #: whether a frame with an empty output (nothing to read) is a latency sample
    time_empty_frames = True

    def bind(self, source: Source) -> None:
        """Read what the task needs from the source's ground truth before the first build."""

    def build(self, cfg: EvalConfig, latency: LatencyRecorder) -> Predictor:
        raise NotImplementedError

    def score(self, source: Source, outputs: dict[int, Any]) -> TaskScores:
        raise NotImplementedError

    def calibration_stage(self, cfg: EvalConfig) -> Any:
        """The task's stage on ONNX Runtime, whose ``encode`` makes the INT8 calibration inputs;
        None: a plain resize to the model's static input size, RGB / 255."""
        return None

    def calibration_feeds(self, cfg: EvalConfig, frames: list[Frame]) -> list[dict[str, np.ndarray]]:
        """INT8 calibration inputs: the stage's own ``encode`` of each frame (copied: the stage reuses
        its buffers), else a plain resize (``calibration_stage``)."""
        stage = self.calibration_stage(cfg)
        if stage is not None:
            return [{k: np.array(v, copy=True) for k, v in stage.encode(f.bgr).feeds.items()} for f in frames]

        spec = open_engine(cfg.model, "onnxruntime").input()
        h, w = spec.shape[-2:]
        if not (isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0):
            raise EngineError(
                f"{cfg.model.name}: dynamic input {spec}; give an INT8 model with --model instead"
            )
        pre = resize_preprocess(spec.name, w, h)
        return [pre(f.bgr) for f in frames]


class DetectionTask(Task):
    """pycocotools bbox mAP; detections kept down to ``conf_threshold`` (1e-2 by default)."""

    name = "detection"
    primary = "AP"

    def __init__(self, conf_threshold: float = DEFAULT_CONF_THRESHOLD, iou_threshold: float = 0.45) -> None:
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.categories: dict[str, int] = {}

    def bind(self, source: Source) -> None:
        self.categories = {name: cid for cid, name in source.category_names().items()}

    def category_ids(self, class_ids: np.ndarray, labels: list[str]) -> np.ndarray:
        """Detector class ids -> COCO category ids by label name (class id + 1 without labels)."""
        if labels and self.categories:
            lut = np.array([self.categories.get(lbl, -1) for lbl in labels], dtype=np.int64)
            return lut[class_ids]
        return class_ids.astype(np.int64) + 1

    def build(self, cfg: EvalConfig, latency: LatencyRecorder) -> Predictor:
        base = {
            "model": str(cfg.model),
            "backend": cfg.backend,
            "conf_threshold": self.conf_threshold,
            "iou_threshold": self.iou_threshold,
        }
        det = Detector(_stage_config(DetectorConfig, base, cfg.options), latency=latency)

        def predict(frame: Frame) -> list[dict[str, Any]]:
            d = det(frame.bgr, frame.stamp_ns)
            cats = self.category_ids(d.class_ids, d.labels)
            keep = cats > 0
            return detections_to_coco(frame.image_id, d.boxes[keep], d.scores[keep], cats[keep])

        return predict

    def calibration_stage(self, cfg: EvalConfig) -> Any:
        base = {"model": str(cfg.model), "backend": "onnxruntime"}
        return Detector(_stage_config(DetectorConfig, base, cfg.options))

    def score(self, source: Source, outputs: dict[int, Any]) -> TaskScores:
        results = [r for rs in outputs.values() for r in rs]
        m = evaluate_coco(source.coco, results, self.conf_threshold, image_ids=list(outputs))
        metrics = m.as_dict()
        for name, ap in m.per_class_ap.items():
            metrics[f"AP[{name}]"] = ap
        for name, ap in m.per_class_ap50.items():
            metrics[f"AP50[{name}]"] = ap
        metrics["detections"] = float(m.num_detections)
        curves = {name: (m.recall_thresholds, p) for name, p in m.pr_curves.items()}
        order = (
            list(m.as_dict())
            + [f"AP[{n}]" for n in m.per_class_ap]
            + [f"AP50[{n}]" for n in m.per_class_ap50]
        )
        return TaskScores(metrics, curves, order)


def _gt_plates(source: Source) -> dict[int, list[tuple[np.ndarray, str]]]:
    """image id -> [(xyxy box, text)] of the annotations carrying a ``text``."""
    out: dict[int, list[tuple[np.ndarray, str]]] = {}
    for a in source.coco.get("annotations", []):
        if a.get("text"):
            x, y, w, h = a["bbox"]
            out.setdefault(int(a["image_id"]), []).append((np.array([x, y, x + w, y + h]), str(a["text"])))
    return out


class PlatesTask(Task):
    """Exact match and character accuracy; GT crops by default, detector + reader when given one."""

    name = "plates"
    primary = "exact_match"
    time_empty_frames = False  # a frame without plates is no reader iteration (seed 002's ms/it)

    def __init__(self) -> None:
        self.gt_plates: dict[int, list[tuple[np.ndarray, str]]] = {}

    def bind(self, source: Source) -> None:
        self.gt_plates = _gt_plates(source)
        if not self.gt_plates:
            raise ValueError(f"{source.description}: no annotation carries a plate 'text'")

    def build(self, cfg: EvalConfig, latency: LatencyRecorder) -> Predictor:
        reader = PlateReader(
            _stage_config(PlateReaderConfig, {"model": str(cfg.model), "backend": cfg.backend}, cfg.options),
            latency=latency,
        )
        if cfg.detector is None:

            def read_crops(frame: Frame) -> list[str | None]:
                h, w = frame.bgr.shape[:2]
                crops = []
                for box, _ in self.gt_plates.get(frame.image_id, []):
                    x0, y0 = np.floor(box[:2]).clip(0).astype(int)
                    x1, y1 = np.ceil(box[2:]).astype(int)
                    crops.append(frame.bgr[y0 : min(y1, h), x0 : min(x1, w)])
                return [text for text, _ in reader.read_crops(crops)] if crops else []

            return read_crops

        det = Detector(
            DetectorConfig(model=str(cfg.detector), backend=cfg.backend), latency=latency, prefix="detector/"
        )

        def end_to_end(frame: Frame) -> list[str | None]:
            readings = reader(frame.bgr, det(frame.bgr, frame.stamp_ns), frame.stamp_ns)
            gt = self.gt_plates.get(frame.image_id, [])
            boxes = np.array([r.box for r in readings], dtype=np.float64).reshape(-1, 4)
            return match_readings(
                np.array([b for b, _ in gt]).reshape(-1, 4), boxes, [r.text for r in readings]
            )

        return end_to_end

    def score(self, source: Source, outputs: dict[int, Any]) -> TaskScores:
        preds: list[str | None] = []
        truths: list[str] = []
        for image_id, texts in outputs.items():
            gt = self.gt_plates.get(image_id, [])
            preds.extend(texts)
            truths.extend(t for _, t in gt)
        s = score_plates(preds, truths)
        metrics = {"exact_match": s.exact_match, "char_accuracy": s.char_accuracy, "cer": s.cer}
        metrics.update(plates=float(s.count), missed=float(s.missed))
        return TaskScores(metrics, order=list(metrics))


class SegmentationTask(Task):
    """mIoU and per-class IoU from one confusion matrix accumulated over the frames."""

    name = "segmentation"
    primary = "mIoU"
    needs_masks = True

    def __init__(self, num_classes: int = 0) -> None:
        self.num_classes = num_classes
        self.classes: list[str] = []

    def bind(self, source: Source) -> None:
        self.classes = list(source.segmentation_classes)
        self.num_classes = self.num_classes or len(self.classes)
        if self.num_classes <= 0:
            raise ValueError(
                f"{source.description}: number of segmentation classes unknown (pass --num-classes)"
            )

    def build(self, cfg: EvalConfig, latency: LatencyRecorder) -> Predictor:
        seg = Segmenter(
            _stage_config(SegmenterConfig, {"model": str(cfg.model), "backend": cfg.backend}, cfg.options),
            latency=latency,
        )
        k = self.num_classes

        def predict(frame: Frame) -> np.ndarray:
            if frame.mask is None:
                raise ValueError(f"frame {frame.name}: no ground-truth mask")
            mask = seg(frame.bgr, frame.stamp_ns).mask
            if mask.shape != frame.mask.shape:  # network-resolution output: compare at GT size
                mask = cv2.resize(mask, frame.mask.shape[::-1], interpolation=cv2.INTER_NEAREST)
            return confusion_matrix(frame.mask, mask, k)

        return predict

    def calibration_stage(self, cfg: EvalConfig) -> Any:
        base = {"model": str(cfg.model), "backend": "onnxruntime"}
        return Segmenter(_stage_config(SegmenterConfig, base, {**cfg.options, "argmax": "cpu"}))

    def score(self, source: Source, outputs: dict[int, Any]) -> TaskScores:

        cm = np.sum(list(outputs.values()), axis=0) if outputs else np.zeros((self.num_classes,) * 2)
        metrics = {"mIoU": mean_iou(cm)}
        names = self.classes or [str(i) for i in range(self.num_classes)]
        for name, iou in zip(names, iou_per_class(cm)):
            metrics[f"IoU[{name}]"] = float(iou)
        pixels = cm.sum()
        metrics["pixel_accuracy"] = float(np.trace(cm) / pixels) if pixels else float("nan")
        return TaskScores(metrics, order=list(metrics))


class RegressionTask(Task):
    """MSE of a regression head (PilotNet's (v, w)) against each image's ``cmd`` target."""

    name = "regression"
    primary = "MSE"
    higher_is_better = False

    def build(self, cfg: EvalConfig, latency: LatencyRecorder) -> Predictor:
        pilot = Pilot(
            _stage_config(PilotConfig, {"model": str(cfg.model), "backend": cfg.backend}, cfg.options),
            latency=latency,
        )

        def predict(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
            if frame.target is None:
                raise ValueError(f"frame {frame.name}: no 'cmd' target in the ground truth")
            c = pilot(frame.bgr, frame.stamp_ns)
            return np.array([c.v, c.w]), frame.target[:2]

        return predict

    def calibration_stage(self, cfg: EvalConfig) -> Any:
        base = {"model": str(cfg.model), "backend": "onnxruntime"}
        return Pilot(_stage_config(PilotConfig, base, cfg.options))

    def score(self, source: Source, outputs: dict[int, Any]) -> TaskScores:
        if not outputs:
            return TaskScores({"MSE": float("nan")}, order=["MSE"])
        pred = np.array([p for p, _ in outputs.values()])
        true = np.array([t for _, t in outputs.values()])
        err = pred - true
        metrics = {
            "MSE": float((err**2).mean()),
            "MSE[v]": float((err[:, 0] ** 2).mean()),
            "MSE[w]": float((err[:, 1] ** 2).mean()),
            "MAE": float(np.abs(err).mean()),
        }
        return TaskScores(metrics, order=list(metrics))


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
        configs = tracking_stage_configs(cfg, self.reader)
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


def tracking_stage_configs(cfg: EvalConfig, reader: Path | None) -> dict[str, Any]:
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


def make_task(name: str, **kwargs: Any) -> Task:
    tasks: dict[str, type[Task]] = {
        "tracking": TrackingTask,
        "detection": DetectionTask,
        "plates": PlatesTask,
        "segmentation": SegmentationTask,
        "regression": RegressionTask,
    }
    if name not in tasks:
        raise ValueError(f"unknown task '{name}'; choose one of {', '.join(TASKS)}")
    return tasks[name](**kwargs)
