"""SSD-style outputs where the model already ran NMS: TF Object Detection API ONNX exports, the
TensorRT ``NMS_TRT`` plugin (7 floats per detection) and ``EfficientNMS_TRT`` (four outputs).
Boxes come out xyxy in network-input pixels."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..inference.engine import TensorSpec
from .decoder import Candidates, Decoder, static


def _find(outputs: list[TensorSpec], key: str) -> TensorSpec | None:
    """The output whose name is ``key`` or contains it (``detection_boxes:0``, ``StatefulPartitioned/..boxes``)."""
    for s in outputs:
        if s.name == key:
            return s
    for s in outputs:
        if key in s.name:
            return s
    return None


class _FourOutputs(Decoder):
    nms_done = True
    keys = ("boxes", "scores", "classes", "num_detections")

    def __init__(self, normalized: bool | None = None) -> None:
        super().__init__()
        self.normalized = normalized
        self.names: dict[str, str] = {}

    def _bind(self, outputs: list[TensorSpec], num_classes: int) -> None:
        found = {k: _find(outputs, k) for k in self.keys}
        missing = [k for k, s in found.items() if s is None]
        if missing:
            raise self.mismatch(outputs, f"no output named like {missing}")
        specs = {k: s for k, s in found.items() if s is not None}
        if len(specs["boxes"].shape) != 3 or static(specs["boxes"].shape[2]) != 4:
            raise self.mismatch(outputs, f"'{specs['boxes'].name}' must be [B, K, 4]")
        if len(specs["scores"].shape) != 2 or len(specs["classes"].shape) != 2:
            raise self.mismatch(outputs, "scores and classes must be [B, K]")
        self.names = {k: s.name for k, s in specs.items()}

    def _arrays(self, outputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = int(np.asarray(outputs[self.names["num_detections"]]).reshape(-1)[0])
        boxes = np.asarray(outputs[self.names["boxes"]][0][:n], np.float32)
        scores = np.asarray(outputs[self.names["scores"]][0][:n], np.float32)
        classes = np.asarray(outputs[self.names["classes"]][0][:n])
        return boxes, scores, classes

    def _scale(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        normalized = self.normalized
        if normalized is None:  # auto: normalised exports never exceed 1 (plus rounding)
            normalized = boxes_xyxy.size == 0 or float(np.abs(boxes_xyxy).max()) <= 1.5
        if normalized:
            boxes_xyxy = boxes_xyxy * np.array([self.input_width, self.input_height] * 2, np.float32)
        return boxes_xyxy


class TfSsdDecoder(_FourOutputs):
    """TF Object Detection API: ``detection_boxes`` [1, K, 4] normalised (ymin, xmin, ymax, xmax),
    ``detection_scores``, ``detection_classes`` (float, 1-based label ids), ``num_detections``."""

    name = "ssd_tf"
    expects = (
        "outputs boxes [B, K, 4] (ymin, xmin, ymax, xmax normalised), scores [B, K], classes [B, K], "
        "num_detections [B]"
    )

    def __init__(self, normalized: bool | None = True) -> None:
        super().__init__(normalized)

    def decode(self, outputs: Mapping[str, np.ndarray], conf_threshold: float) -> Candidates:
        boxes, scores, classes = self._arrays(outputs)
        keep = scores > conf_threshold
        xyxy = self._scale(boxes[keep][:, [1, 0, 3, 2]])
        return Candidates(xyxy, scores[keep], classes[keep].astype(np.int32), nms_done=True)


class EfficientNmsDecoder(_FourOutputs):
    """EfficientNMS_TRT: ``num_detections`` [B, 1] int32, ``detection_boxes`` [B, K, 4] (x1, y1, x2,
    y2, in input pixels or normalised), ``detection_scores`` [B, K], ``detection_classes`` [B, K]."""

    name = "efficient_nms"
    expects = (
        "outputs num_detections [B, 1], detection_boxes [B, K, 4] (x1, y1, x2, y2), "
        "detection_scores [B, K], detection_classes [B, K]"
    )

    def decode(self, outputs: Mapping[str, np.ndarray], conf_threshold: float) -> Candidates:
        boxes, scores, classes = self._arrays(outputs)
        keep = scores > conf_threshold
        return Candidates(
            self._scale(boxes[keep]), scores[keep], classes[keep].astype(np.int32), nms_done=True
        )


class TrtNmsDecoder(Decoder):
    """TensorRT ``NMS_TRT`` plugin (UFF/ONNX SSD samples): ``[B, 1, keepTopK, 7]`` of (image_id,
    label, confidence, xmin, ymin, xmax, ymax) normalised; rows after the kept ones have id -1 or
    confidence 0. The optional second output (keep count) is not needed."""

    name = "trt_nms"
    expects = "an output [B, 1, K, 7] (image_id, label, confidence, xmin, ymin, xmax, ymax normalised)"
    nms_done = True

    def __init__(self, output: str = "", normalized: bool = True) -> None:
        super().__init__()
        self.output_name = output
        self.normalized = normalized

    def _bind(self, outputs: list[TensorSpec], num_classes: int) -> None:
        cands = (
            [s for s in outputs if s.name == self.output_name]
            if self.output_name
            else [s for s in outputs if s.shape and static(s.shape[-1]) == 7]
        )
        if not cands:
            raise self.mismatch(outputs, "no output with a last dimension of 7")
        self.output_name = cands[0].name

    def decode(self, outputs: Mapping[str, np.ndarray], conf_threshold: float) -> Candidates:
        rows = np.asarray(outputs[self.output_name][0], np.float32).reshape(-1, 7)  # batch item 0
        keep = (rows[:, 0] >= 0) & (rows[:, 2] > conf_threshold)
        rows = rows[keep]
        boxes = rows[:, 3:7].copy()
        if self.normalized:
            boxes *= np.array([self.input_width, self.input_height] * 2, np.float32)
        return Candidates(boxes, rows[:, 2].copy(), rows[:, 1].astype(np.int32), nms_done=True)
