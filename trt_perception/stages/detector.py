"""Detector stage (ROS-free): BGR frame -> ``Detections`` in source pixels.

Pre-processing into the engine's preallocated input, one engine call, decoding (YOLO/SSD formats),
class-aware NMS, class filter and the letterbox undone. The model/decoder pairing is checked when the
stage is built, so a mismatch fails at startup with the expected and the actual tensors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..inference.engine import Engine, EngineError, TensorSpec
from ..inference.factory import open_engine
from ..metrics.latency import INFERENCE, POSTPROCESS, PREPROCESS, LatencyRecorder
from ..vision.decoder import Decoder, make_decoder, static
from ..vision.detections import Detections, class_id, load_labels
from ..vision.nms import nms
from ..vision.preprocess import Letterbox, Preprocessor, preset


@dataclass
class DetectorConfig:
    model: str
    backend: str = "auto"
    #: yolov8 | yolov11 | yolov5 | yolox | yolo_end2end | ssd_tf | trt_nms | efficient_nms
    decoder: str = "yolov8"
    #: Pre-processing preset (yolo | yolox | ssd_tf | imagenet | pilotnet); size from the model.
    preprocess: str = "yolo"
    #: Network input size; 0 takes it from the model (or the preset for a dynamic input).
    input_width: int = 0
    input_height: int = 0
    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 100
    #: Labels file (one per line, line N = class id N); empty uses ``<model stem>_labels.txt`` if present.
    labels: str = ""
    #: Classes to keep, by label or id; empty keeps all.
    classes: list[str] = field(default_factory=list)
    class_agnostic_nms: bool = False


class Detector:
    """``Detector(cfg)(bgr, stamp_ns) -> Detections``; records preprocess/inference/postprocess."""

    def __init__(
        self,
        cfg: DetectorConfig,
        latency: LatencyRecorder | None = None,
        engine: Engine | None = None,
        prefix: str = "",
    ) -> None:
        self.cfg = cfg
        self.latency = latency or LatencyRecorder()
        self._names = (prefix + PREPROCESS, prefix + INFERENCE, prefix + POSTPROCESS)
        self.engine = engine or open_engine(cfg.model, cfg.backend)
        self.labels = _labels(cfg)
        spec = self.engine.input()
        self.input_name = spec.name
        self.preprocessor = Preprocessor(_preprocess_config(cfg, spec))
        pc = self.preprocessor.config
        self.decoder: Decoder = make_decoder(cfg.decoder)
        try:
            self.decoder.bind(self.engine.outputs, pc.width, pc.height, len(self.labels))
        except EngineError as exc:
            raise type(exc)(f"{Path(cfg.model).name}: {exc}") from None
        self._keep = np.array(sorted({class_id(c, self.labels) for c in cfg.classes}), np.int32)
        self._feeds = {self.input_name: self.preprocessor.tensor}

    @property
    def input_size(self) -> tuple[int, int]:
        return self.preprocessor.config.width, self.preprocessor.config.height

    def __call__(self, bgr: np.ndarray, stamp_ns: int = 0) -> Detections:
        t0 = time.perf_counter()
        _, box = self.preprocessor(bgr)
        t1 = time.perf_counter()
        outputs = self.engine.infer(self._feeds)
        t2 = time.perf_counter()
        dets = self.postprocess(outputs, box)
        t3 = time.perf_counter()
        # Recorded once the frame is done: nothing but the work itself between the clock reads.
        pre, inf, post = self._names
        self.latency.record(pre, (t1 - t0) * 1e3)
        self.latency.record(inf, self.engine.last_latency_ms)
        self.latency.record(post, (t3 - t2) * 1e3)
        return dets

    def postprocess(self, outputs: dict[str, np.ndarray], box: Letterbox) -> Detections:
        """Decode, NMS (unless the model did it), class filter, cap, boxes back to source pixels."""
        cfg = self.cfg
        cand = self.decoder.decode(outputs, cfg.conf_threshold)
        boxes, scores, classes = cand.boxes, cand.scores, cand.class_ids
        if self._keep.size:
            m = np.isin(classes, self._keep)
            boxes, scores, classes = boxes[m], scores[m], classes[m]
        if cand.nms_done:
            idx = np.argsort(-scores, kind="stable")[: cfg.max_detections]
        else:
            idx = nms(boxes, scores, classes, cfg.iou_threshold, cfg.max_detections, cfg.class_agnostic_nms)
        src = box.to_source(boxes[idx])
        ok = (src[:, 2] > src[:, 0]) & (src[:, 3] > src[:, 1])  # boxes wholly in the letterbox padding
        return Detections(src[ok], scores[idx][ok], classes[idx][ok], self.labels)

    def warmup(self, iterations: int = 2) -> None:
        for _ in range(iterations):
            self.engine.infer(self._feeds)


def _labels(cfg: DetectorConfig) -> list[str]:
    if cfg.labels:
        return load_labels(cfg.labels)
    sibling = Path(cfg.model).with_name(Path(cfg.model).stem + "_labels.txt")
    return load_labels(sibling) if sibling.is_file() else []


def _preprocess_config(cfg: DetectorConfig, spec: TensorSpec):  # type: ignore[no-untyped-def]
    """The preset, sized and laid out like the model's input tensor."""
    base = preset(cfg.preprocess)
    if len(spec.shape) != 4:
        raise EngineError(f"{Path(cfg.model).name}: input {spec} must be 4-D (NCHW or NHWC)")
    nhwc = static(spec.shape[3]) == 3 and static(spec.shape[1]) != 3
    h_dim, w_dim = (spec.shape[1], spec.shape[2]) if nhwc else (spec.shape[2], spec.shape[3])
    width = cfg.input_width or static(w_dim) or base.width
    height = cfg.input_height or static(h_dim) or base.height
    for name, want, have in (("width", width, static(w_dim)), ("height", height, static(h_dim))):
        if have is not None and want != have:
            raise EngineError(
                f"{Path(cfg.model).name}: input_{name} {want} but the model's input {spec} is fixed"
            )
    dtype = np.dtype(spec.dtype).name
    if dtype not in ("float32", "float16", "uint8"):
        raise EngineError(f"{Path(cfg.model).name}: input {spec} has an unsupported dtype")
    overrides: dict[str, object] = {"width": width, "height": height, "layout": "NHWC" if nhwc else "NCHW"}
    overrides["dtype"] = dtype
    if dtype == "uint8":  # the graph normalises itself (TF OD API exports)
        overrides.update(scale=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return replace(base, **overrides)  # type: ignore[arg-type]
