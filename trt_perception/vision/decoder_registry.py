"""Detector output decoders by name (``make_decoder("yolov8")``): the one place that knows every format."""

from __future__ import annotations

from . import ssd, yolo
from .decoder import Decoder

DECODERS = ("yolov8", "yolov11", "yolov5", "yolox", "yolo_end2end", "ssd_tf", "trt_nms", "efficient_nms")


def make_decoder(name: str, **options: object) -> Decoder:
    """A decoder by name: ``yolov8``/``yolov11`` ([1, 4+nc, N]), ``yolov5`` ([1, N, 5+nc]),
    ``yolox`` (grid-encoded [1, N, 5+nc], strides 8/16/32), ``yolo_end2end`` (NMS in the graph,
    [1, K, 6]), ``ssd_tf`` (TF Object Detection API:
    boxes/scores/classes/num_detections), ``trt_nms`` (TensorRT NMS plugin, 7 floats per detection),
    ``efficient_nms`` (EfficientNMS_TRT's four outputs)."""
    table: dict[str, type[Decoder]] = {
        "yolov8": yolo.YoloV8Decoder,
        "yolov11": yolo.YoloV8Decoder,
        "yolo11": yolo.YoloV8Decoder,
        "yolov5": yolo.YoloV5Decoder,
        "yolox": yolo.YoloXDecoder,
        "yolo_end2end": yolo.YoloEnd2EndDecoder,
        "ssd_tf": ssd.TfSsdDecoder,
        "trt_nms": ssd.TrtNmsDecoder,
        "efficient_nms": ssd.EfficientNmsDecoder,
    }
    try:
        cls = table[name]
    except KeyError:
        raise ValueError(f"unknown decoder '{name}'; choose one of {', '.join(DECODERS)}") from None
    return cls(**options)  # type: ignore[arg-type]
