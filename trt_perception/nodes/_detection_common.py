"""Shared by the detector, plate_reader and perception_pipeline nodes: their stage parameters
(declared once, with descriptions) and the stage configs built from them."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from ..ros.files import resolve_file
from ..ros.params import Param
from ..stages.detector import DetectorConfig
from ..stages.plate_reader import PlateReaderConfig

DETECTOR_PARAMETERS: tuple[Param, ...] = (
    Param(
        "model",
        "models/detector.onnx",
        "ONNX model or TensorRT engine (relative paths: cwd, then the package share).",
    ),
    Param(
        "backend",
        "auto",
        "auto | onnxruntime | openvino | tensorrt (auto: .onnx -> ONNX Runtime, .xml -> OpenVINO, .engine/.plan -> TensorRT).",
    ),
    Param(
        "decoder",
        "",
        "Output format: yolov8 | yolov11 | yolov5 | yolox | yolo_end2end | ssd_tf | trt_nms | efficient_nms; "
        "empty takes it from the model's metadata (else yolov8).",
    ),
    Param(
        "preprocess",
        "",
        "Pre-processing preset: yolo | yolox | ssd_tf | imagenet | pilotnet; empty takes it from the model "
        "(else the decoder's usual one).",
    ),
    Param("input_width", 0, "Network input width; 0 takes it from the model."),
    Param("input_height", 0, "Network input height; 0 takes it from the model."),
    Param("conf_threshold", 0.25, "Minimum detection score."),
    Param("iou_threshold", 0.45, "IoU above which NMS suppresses a box of the same class."),
    Param("max_detections", 100, "Most detections per frame after NMS."),
    Param(
        "labels", "", "Labels file (line N = class id N); empty uses <model>_labels.txt next to the model."
    ),
    Param("classes", [], "Classes to keep, by label or id; empty keeps all."),
)

READER_PARAMETERS: tuple[Param, ...] = (
    Param("model", "models/plate_reader_ctc.onnx", "Reader ONNX model or TensorRT engine."),
    Param("backend", "auto", "auto | onnxruntime | openvino | tensorrt."),
    Param(
        "decoder",
        "",
        "ctc (probs [N,T,C], CTC greedy) | heads (probs [N,K,C], one softmax per character); empty takes it "
        "from the model's metadata (else ctc).",
    ),
    Param("charset", "", "Character file; empty reads the model metadata key 'character'."),
    Param("blank_index", 0, "CTC blank class (heads: the 'no character' class)."),
    Param("plate_class", "plate", "Detector label (or id) whose boxes are read."),
    Param("padding", 0.05, "Crop growth on each side, as a fraction of the box size."),
    Param("min_width", 16, "Boxes narrower than this (px) are not read (DeepStream input-object-min-width)."),
    Param("min_height", 8, "Boxes lower than this (px) are not read."),
    Param("max_width", 0, "Boxes wider than this (px) are not read; 0 = no limit."),
    Param("max_height", 0, "Boxes higher than this (px) are not read; 0 = no limit."),
    Param("max_batch", 16, "Most crops per reader call."),
    Param("input_width", 0, "Reader input width; 0 takes it from the model."),
    Param("input_height", 0, "Reader input height; 0 takes it from the model."),
    Param("min_confidence", 0.0, "Readings below this confidence are not published."),
)


def detector_config(p: dict[str, Any], prefix: str = "", model: str | None = None) -> DetectorConfig:
    g = lambda k: p[prefix + k]  # noqa: E731
    return DetectorConfig(
        model=model or resolve_file(str(g("model"))),
        backend=str(g("backend")),
        decoder=str(g("decoder")),
        preprocess=str(g("preprocess")),
        input_width=int(g("input_width")),
        input_height=int(g("input_height")),
        conf_threshold=float(g("conf_threshold")),
        iou_threshold=float(g("iou_threshold")),
        max_detections=int(g("max_detections")),
        labels=resolve_file(str(g("labels"))),
        classes=[str(c) for c in g("classes") if str(c)],
    )


def reader_config(p: dict[str, Any], prefix: str = "", model: str | None = None) -> PlateReaderConfig:
    g = lambda k: p[prefix + k]  # noqa: E731
    return PlateReaderConfig(
        model=model or resolve_file(str(g("model"))),
        backend=str(g("backend")),
        decoder=str(g("decoder")),
        charset=resolve_file(str(g("charset"))),
        blank_index=int(g("blank_index")),
        plate_class=str(g("plate_class")),
        padding=float(g("padding")),
        min_size=(int(g("min_width")), int(g("min_height"))),
        max_size=(int(g("max_width")), int(g("max_height"))),
        max_batch=int(g("max_batch")),
        input_width=int(g("input_width")),
        input_height=int(g("input_height")),
        min_confidence=float(g("min_confidence")),
    )


C = TypeVar("C")


def config_params(cls: type, prefix: str = "") -> tuple[Param, ...]:
    """Node parameters of a stage config dataclass whose fields carry their description in
    ``metadata["help"]`` (``TrackerConfig``, ``PlateConsensusConfig``): declared once, in the stage."""
    out = []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        out.append(Param(prefix + f.name, default, f.metadata["help"]))
    return tuple(out)


def config_from_params(cls: type[C], p: dict[str, Any], prefix: str = "") -> C:
    """``cls`` filled from the node's parameter values of ``config_params(cls, prefix)``."""
    return cls(**{f.name: p[prefix + f.name] for f in dataclasses.fields(cls)})  # type: ignore[arg-type]


def prefixed(params: tuple[Param, ...], prefix: str) -> tuple[Param, ...]:
    return tuple(Param(prefix + p.name, p.default, p.description, p.read_only) for p in params)
