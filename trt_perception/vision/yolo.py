"""YOLO heads: Ultralytics v8/v11 ([1, 4+nc, N]), v5 ([1, N, 5+nc] with objectness) and YOLOX
(grid-encoded [1, N, 5+nc] over strides 8/16/32). Boxes come out xyxy in network-input pixels."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..inference.engine import TensorSpec
from .decoder import Candidates, Decoder, static
from .nms import best_class, xywh_to_xyxy


class _SingleOutput(Decoder):
    def __init__(self, output: str = "") -> None:
        super().__init__()
        self.output_name = output

    def _pick(self, outputs: list[TensorSpec]) -> TensorSpec:
        if self.output_name:
            for s in outputs:
                if s.name == self.output_name:
                    return s
            raise self.mismatch(outputs, f"no output named '{self.output_name}'")
        if len(outputs) != 1:  # chosen by name, never by guessing from the shapes
            raise self.mismatch(outputs, "several outputs: name the one to decode (parameter 'output')")
        return outputs[0]


class YoloV8Decoder(_SingleOutput):
    """Ultralytics v8/v11 export: ``[1, 4+nc, N]``, cx,cy,w,h in input pixels then class scores."""

    name = "yolov8"
    expects = "one output [1, 4+nc, N] (cx, cy, w, h, nc class scores; 4+nc < N)"

    def _bind(self, outputs: list[TensorSpec], num_classes: int) -> None:
        spec = self._pick(outputs)
        self.output_name = spec.name
        rows, n = static(spec.shape[1]), static(spec.shape[2])
        if len(spec.shape) != 3 or rows is None or rows < 5:
            raise self.mismatch(outputs, f"'{spec.name}' needs a static second dimension 4+nc >= 5")
        if n is not None and n <= rows:
            raise self.mismatch(outputs, f"'{spec.name}' looks transposed ([1, N, C], a v5/YOLOX layout)")
        if num_classes and rows - 4 != num_classes:
            raise self.mismatch(
                outputs, f"'{spec.name}' has {rows - 4} classes but the labels list {num_classes}"
            )

    def decode(self, outputs: Mapping[str, np.ndarray], conf_threshold: float) -> Candidates:
        out = outputs[self.output_name][0]  # [4+nc, N]
        keep, scores, classes = best_class(out[4:], conf_threshold)
        if keep.size == 0:
            return Candidates.empty()
        return Candidates(xywh_to_xyxy(out[:4, keep].T), scores, classes)


class YoloV5Decoder(_SingleOutput):
    """YOLOv5 export: ``[1, N, 5+nc]``: cx, cy, w, h, objectness, class scores; score = obj * cls."""

    name = "yolov5"
    expects = "one output [1, N, 5+nc] (cx, cy, w, h, objectness, nc class scores; N > 5+nc)"

    def _bind(self, outputs: list[TensorSpec], num_classes: int) -> None:
        spec = self._pick(outputs)
        self.output_name = spec.name
        n, cols = static(spec.shape[1]), static(spec.shape[2])
        if cols is None or cols < 6:
            raise self.mismatch(outputs, f"'{spec.name}' needs a static last dimension 5+nc >= 6")
        if n is not None and n <= cols:
            raise self.mismatch(outputs, f"'{spec.name}' looks transposed ([1, C, N], a v8 layout)")
        if num_classes and cols - 5 != num_classes:
            raise self.mismatch(
                outputs, f"'{spec.name}' has {cols - 5} classes but the labels list {num_classes}"
            )

    def _rows(self, outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        return outputs[self.output_name][0]

    def decode(self, outputs: Mapping[str, np.ndarray], conf_threshold: float) -> Candidates:
        pred = self._rows(outputs)  # [N, 5+nc]
        # Objectness first: it rejects almost every row before the class scores are touched.
        rows = np.flatnonzero(pred[:, 4] > conf_threshold)
        if rows.size == 0:
            return Candidates.empty()
        sub = pred[rows]
        cls_scores = sub[:, 5:] * sub[:, 4:5]
        keep, scores, classes = best_class(cls_scores.T, conf_threshold)
        if keep.size == 0:
            return Candidates.empty()
        return Candidates(xywh_to_xyxy(self._boxes(sub[keep], rows[keep])), scores, classes)

    def _boxes(self, rows: np.ndarray, index: np.ndarray) -> np.ndarray:
        return rows[:, :4]


class YoloXDecoder(YoloV5Decoder):
    """YOLOX export without in-graph decoding: per anchor point ``(x, y, log w, log h)`` relative to
    its grid cell over strides 8/16/32 (row-major per level), objectness and class scores."""

    name = "yolox"
    expects = "one output [1, N, 5+nc] grid-encoded, N = sum((H/s)*(W/s) for s in strides)"

    def __init__(self, output: str = "", strides: tuple[int, ...] = (8, 16, 32)) -> None:
        super().__init__(output)
        self.strides = tuple(int(s) for s in strides)
        self._grid = np.zeros((0, 2), np.float32)
        self._stride = np.zeros((0, 1), np.float32)

    def _bind(self, outputs: list[TensorSpec], num_classes: int) -> None:
        super()._bind(outputs, num_classes)
        grids, strides = [], []
        for s in self.strides:
            gh, gw = self.input_height // s, self.input_width // s
            ys, xs = np.mgrid[0:gh, 0:gw]
            grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
            strides.append(np.full((gh * gw, 1), s))
        self._grid = np.concatenate(grids).astype(np.float32)
        self._stride = np.concatenate(strides).astype(np.float32)
        spec = next(s for s in outputs if s.name == self.output_name)
        n = static(spec.shape[1])
        if n is not None and n != len(self._grid):
            raise self.mismatch(
                outputs,
                f"'{spec.name}' has {n} anchor points but a {self.input_width}x{self.input_height} input "
                f"with strides {self.strides} gives {len(self._grid)}",
            )

    def _boxes(self, rows: np.ndarray, index: np.ndarray) -> np.ndarray:
        stride = self._stride[index]
        xy = (rows[:, :2] + self._grid[index]) * stride
        wh = np.exp(rows[:, 2:4]) * stride
        return np.concatenate([xy, wh], axis=1)


class YoloEnd2EndDecoder(_SingleOutput):
    """End-to-end exports that run NMS in the graph (Ultralytics ``nms=True``, YOLOv10, YOLO26):
    ``[1, K, 6]`` rows of x1, y1, x2, y2 (input pixels), score, class id."""

    name = "yolo_end2end"
    expects = "one output [1, K, 6] (x1, y1, x2, y2, score, class)"
    nms_done = True

    def _bind(self, outputs: list[TensorSpec], num_classes: int) -> None:
        spec = self._pick(outputs)
        self.output_name = spec.name
        if static(spec.shape[2]) != 6:
            raise self.mismatch(outputs, f"'{spec.name}' needs a last dimension of 6")

    def decode(self, outputs: Mapping[str, np.ndarray], conf_threshold: float) -> Candidates:
        rows = outputs[self.output_name][0]
        rows = rows[rows[:, 4] > conf_threshold]
        return Candidates(
            rows[:, :4].astype(np.float32),
            rows[:, 4].astype(np.float32),
            rows[:, 5].astype(np.int32),
            nms_done=True,
        )
