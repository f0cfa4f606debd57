"""Detector stage (ROS-free): BGR frame -> ``Detections`` in source pixels.

Encoder (pre-processing into the engine's preallocated input) -> Engine -> decoder (YOLO/SSD formats,
class-aware NMS, class filter, the letterbox undone), composed once from the model's ``ModelInfo``:
labels, decoder, pre-processing preset, input size and output name come from the config's non-empty
values, then the model's metadata, then sidecars (``inference/model_info.py``). A contradiction or a
model that does not fit its decoder fails at startup naming both sides; missing labels are a
warning in ``warnings`` (published on ``/diagnostics`` by the nodes).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..inference.engine import Encoded, Engine, EngineError, TensorSpec
from ..inference.model_info import DECODER_PRESETS, ModelInfo, engine_info
from ..metrics.latency import LatencyRecorder
from ..vision.decoder import Decoder, static
from ..vision.decoder_registry import make_decoder
from ..vision.detections import Detections, class_id
from ..vision.nms import nms
from ..vision.preprocess import Letterbox, Preprocessor, preset
from .fields import about, setting
from .model_stage import ModelStage


@dataclass
class DetectorConfig:
    model: str = setting(
        help="ONNX model, OpenVINO IR or TensorRT engine (relative paths: cwd, then the package share)."
    )
    backend: str = setting(
        "auto",
        help="auto | onnxruntime | openvino | tensorrt (auto: .onnx -> ONNX Runtime, .xml -> OpenVINO, "
        ".engine/.plan -> TensorRT).",
    )
    decoder: str = setting(
        "",
        help="Output format: yolov8 | yolov11 | yolov5 | yolox | yolo_end2end | ssd_tf | trt_nms | efficient_nms; "
        "empty takes it from the model's metadata (else yolov8).",
    )
    preprocess: str = setting(
        "",
        help="Pre-processing preset: yolo | yolox | ssd_tf | imagenet | pilotnet; empty takes it from the model "
        "(else the decoder's usual one).",
    )
    input_width: int = setting(
        0,
        help="Network input width; 0 takes it from the model (a dynamic input: its imgsz, else the preset's).",
    )
    input_height: int = setting(0, help="Network input height; 0 takes it from the model.")
    conf_threshold: float = setting(0.25, help="Minimum detection score.", range=(0.0, 1.0))
    iou_threshold: float = setting(
        0.45, help="IoU above which NMS suppresses a box of the same class.", range=(0.0, 1.0)
    )
    max_detections: int = setting(100, help="Most detections per frame after NMS.")
    labels: str = setting(
        "",
        help="Labels file (line N = class id N); empty: the model's metadata (names), else "
        "<model>_labels.txt next to the model.",
        path=True,
    )
    output: str = setting(
        "",
        help="Output tensor the decoder reads (single-output formats); empty: the only output, else output0 "
        "(Ultralytics) or output (YOLOX).",
    )
    classes: list[str] = field(
        default_factory=list, metadata=about(help="Classes to keep, by label or id; empty keeps all.")
    )
    class_agnostic_nms: bool = setting(
        False, help="NMS across classes (a box suppresses overlapping boxes of any class)."
    )


class Detector(ModelStage[DetectorConfig]):
    """``Detector(cfg)(bgr, stamp_ns) -> Detections``; records preprocess/inference/postprocess.

    ``detect_batch(frames)`` runs up to ``max_batch`` frames (any sizes) per engine call: each is
    letterboxed into its slot of one preallocated ``[max_batch, ...]`` input, then decoded on its own.
    ``max_batch`` is the caller's (the multi-camera pipeline's camera count), not a model parameter;
    above 1 it needs a model whose batch dimension is dynamic (or a TensorRT profile that reaches
    it), else the constructor raises ``EngineError`` naming the model's fixed batch: a robot should
    fail at configure time, not run N cameras at a fraction of the rate it was sized for.
    """

    def __init__(
        self,
        cfg: DetectorConfig,
        latency: LatencyRecorder | None = None,
        engine: Engine | None = None,
        prefix: str = "",
        max_batch: int = 1,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        super().__init__(cfg, latency, engine, prefix, cfg.model)
        name = Path(cfg.model).name
        self.info = engine_info(
            self.engine,
            {"labels": cfg.labels, "decoder": cfg.decoder, "preprocess": cfg.preprocess},
        )
        self.labels = list(self.info.labels)
        self.warnings = list(self.info.warnings)
        if not self.labels:
            self.warnings.append(
                f"{name}: no labels (no 'labels' parameter, no 'names' in the model's metadata, no "
                f"{Path(cfg.model).stem}_labels.txt): classes are published as ids"
            )
        spec = self.engine.input()
        self.input_name = spec.name
        _check_batch(self.engine, spec, max_batch)
        self.max_batch = max_batch
        self.preprocessor = Preprocessor(_preprocess_config(cfg, spec, self.info), batch=max_batch)
        pc = self.preprocessor.config
        decoder = _decoder_name(self.info)
        self.decoder: Decoder = make_decoder(decoder, **_output_option(cfg, self.engine, decoder))
        try:
            self.decoder.bind(self.engine.outputs, pc.width, pc.height, len(self.labels))
        except EngineError as exc:
            where = f"; labels from {self.info.source('labels')}" if self.labels else ""
            raise type(exc)(f"{name}: {exc}{where}") from None
        self._keep = np.array(sorted({class_id(c, self.labels) for c in cfg.classes}), np.int32)
        # One frame reads slot 0 alone (a view: the single-frame call is what it was).
        self._feeds = {self.input_name: self.preprocessor.tensor[:1]}

    @property
    def input_size(self) -> tuple[int, int]:
        return self.preprocessor.config.width, self.preprocessor.config.height

    def encode(self, bgr: np.ndarray) -> Encoded:
        """The network input of one frame (the stage's buffer: copy to keep) and its letterbox."""
        _, box = self.preprocessor(bgr)
        return Encoded(self._feeds, box)

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

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """``Detections`` of each BGR frame (sizes may differ), ``max_batch`` frames per engine call.

        Latencies are recorded per engine call (its whole batch) under the single-frame names."""
        pre, inf, post = self._names
        results: list[Detections] = []
        tensor = self.preprocessor.tensor
        for start in range(0, len(frames), self.max_batch):
            chunk = frames[start : start + self.max_batch]
            t0 = time.perf_counter()
            boxes = [self.preprocessor(bgr, i)[1] for i, bgr in enumerate(chunk)]
            t1 = time.perf_counter()
            outputs = self.engine.infer({self.input_name: tensor[: len(chunk)]})
            t2 = time.perf_counter()
            results += [self.postprocess(_item(outputs, i, len(chunk)), box) for i, box in enumerate(boxes)]
            t3 = time.perf_counter()
            self.latency.record(pre, (t1 - t0) * 1e3)
            self.latency.record(inf, self.engine.last_latency_ms)
            self.latency.record(post, (t3 - t2) * 1e3)
        return results

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

    def warmup(self, iterations: int = 1) -> None:
        """Whole passes (encode, engine, decode) on a grey frame of the network's size."""
        grey = np.full((self.input_size[1], self.input_size[0], 3), 114, np.uint8)
        for _ in range(iterations):
            self(grey)


def _check_batch(engine: Engine, spec: TensorSpec, max_batch: int) -> None:
    """``max_batch`` frames per call must fit the model's batch: its fixed size or TensorRT profile."""
    if max_batch == 1:
        return
    _, most = engine.batch_limits(spec.name)
    if most is not None and most < max_batch:
        raise EngineError(
            f"{engine.path.name}: {max_batch} frames per call requested, but input {spec} takes at most "
            f"{most} (a fixed batch, or the TensorRT engine's profile); export the model with a dynamic "
            "batch dimension (the sample: python -m tools.train_detector --dynamic-batch-only) and build the "
            f"engine with max_batch >= {max_batch}, or run one frame per call (max_batch 1)"
        )


def _item(outputs: dict[str, np.ndarray], i: int, n: int) -> dict[str, np.ndarray]:
    """Frame ``i``'s outputs as a batch of one (views; the decoders read batch item 0); outputs
    without the batch dimension pass as they are."""
    if n == 1:
        return outputs
    return {k: v[i : i + 1] if v.ndim and v.shape[0] == n else v for k, v in outputs.items()}


def _decoder_name(info: ModelInfo) -> str:
    return info.decoder or "yolov8"


def _output_option(cfg: DetectorConfig, engine: Engine, decoder: str) -> dict[str, str]:
    """The output a single-output decoder reads, by name: the parameter, the only output, or the
    exporters' name (Ultralytics ``output0``, YOLOX ``output``); multi-output formats (SSD,
    EfficientNMS) find theirs by name themselves."""
    if decoder not in _SINGLE_OUTPUT:
        return {}
    names = [o.name for o in engine.outputs]
    if cfg.output:
        return {"output": cfg.output}
    if len(names) == 1:
        return {"output": names[0]}
    known = [n for n in ("output0", "output") if n in names]
    return {"output": known[0]} if known else {}


_SINGLE_OUTPUT = ("yolov8", "yolov11", "yolo11", "yolov5", "yolox", "yolo_end2end", "trt_nms")


def _preprocess_config(cfg: DetectorConfig, spec: TensorSpec, info: ModelInfo):  # type: ignore[no-untyped-def]
    """The preset, sized and laid out like the model's input tensor."""
    decoder = _decoder_name(info)
    base = preset(info.preprocess or DECODER_PRESETS.get(decoder, "yolo"))
    if len(spec.shape) != 4:
        raise EngineError(f"{Path(cfg.model).name}: input {spec} must be 4-D (NCHW or NHWC)")
    nhwc = static(spec.shape[3]) == 3 and static(spec.shape[1]) != 3
    h_dim, w_dim = (spec.shape[1], spec.shape[2]) if nhwc else (spec.shape[2], spec.shape[3])
    width = cfg.input_width or static(w_dim) or info.input_size[0] or base.width
    height = cfg.input_height or static(h_dim) or info.input_size[1] or base.height
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
