"""Plate reader stage (ROS-free): the secondary inference of the plate pipeline.

Like DeepStream's secondary ``nvinfer``: takes the detector's boxes of one class (``plate_class``,
``operate-on-class-ids``), skips boxes outside ``min_size``/``max_size`` (``input-object-min/max-*``),
pads and crops them from the full-resolution frame, runs the reader on batches of up to
``max_batch`` crops and decodes CTC greedy or per-character heads with ``vision/text.py`` (with the format/country head
when the model has one: each plate's format then restricts its heads to letters or digits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..inference.engine import Engine, EngineError
from ..inference.factory import open_engine
from ..metrics.latency import INFERENCE, POSTPROCESS, PREPROCESS, LatencyRecorder
from ..vision.decoder import static
from ..vision.detections import Detections
from ..vision.text import ctc_greedy_decode, heads_decode, load_charset, prepare_text_crops

DECODERS = ("ctc", "heads")
#: Latency stage of box selection and cropping (``preprocess`` is the crops -> tensor part).
CROP = "crop"


@dataclass
class PlateReaderConfig:
    model: str
    backend: str = "auto"
    #: ctc (probs [N, T, C], blank at ``blank_index``) | heads (probs [N, K, C], class 0 = no character)
    decoder: str = "ctc"
    #: Character file; empty reads the model's metadata (key ``character``).
    charset: str = ""
    blank_index: int = 0
    #: Detector label (or class id as text) whose boxes are read.
    plate_class: str = "plate"
    #: Box growth on every side, as a fraction of the box size, before cropping.
    padding: float = 0.05
    #: Boxes smaller / larger than this (w, h in source pixels) are not read; 0 disables a bound.
    min_size: tuple[int, int] = (16, 8)
    max_size: tuple[int, int] = (0, 0)
    max_batch: int = 16
    #: Reader input size; 0 takes it from the model (width 0 on a dynamic model -> 4 * height).
    input_width: int = 0
    input_height: int = 0
    #: Readings below this confidence are dropped.
    min_confidence: float = 0.0


@dataclass
class PlateReading:
    """One read plate: its box (xyxy, source pixels), text and confidence."""

    box: np.ndarray
    text: str
    confidence: float
    #: Detection score of the plate box.
    score: float = 0.0


class PlateReader:
    """``PlateReader(cfg)(bgr, detections) -> list[PlateReading]`` and ``read_crops(crops)``."""

    def __init__(
        self,
        cfg: PlateReaderConfig,
        latency: LatencyRecorder | None = None,
        engine: Engine | None = None,
        prefix: str = "",
    ) -> None:
        if cfg.decoder not in DECODERS:
            raise ValueError(f"unknown plate decoder '{cfg.decoder}'; choose one of {', '.join(DECODERS)}")
        if cfg.max_batch <= 0:
            raise ValueError(f"max_batch must be positive, got {cfg.max_batch}")
        self.cfg = cfg
        self.latency = latency or LatencyRecorder()
        self._names = (prefix + PREPROCESS, prefix + INFERENCE, prefix + POSTPROCESS)
        self._crop_name = prefix + CROP
        self.engine = engine or open_engine(cfg.model, cfg.backend)
        name = Path(cfg.model).name
        spec = self.engine.input()
        rank3 = [o for o in self.engine.outputs if len(o.shape) == 3]
        out = rank3[0] if rank3 else self.engine.outputs[0]
        if len(spec.shape) != 4 or static(spec.shape[1]) not in (3, None):
            raise EngineError(f"{name}: reader input {spec} must be [N, 3, H, W]")
        if len(out.shape) != 3:
            raise EngineError(
                f"{name}: decoder '{cfg.decoder}' expects an output [N, T|K, C] of probabilities; "
                f"the model has {out}"
            )
        self.input_name, self.output_name = spec.name, out.name
        self.height = cfg.input_height or static(spec.shape[2]) or 32
        self.width = cfg.input_width or static(spec.shape[3]) or 4 * self.height
        self._static_batch = static(spec.shape[0])
        try:
            self.charset = load_charset(
                cfg.charset or None,
                self.engine.metadata,
                blank=cfg.blank_index,
                num_classes=static(out.shape[2]),
            )
        except ValueError as exc:
            raise EngineError(f"{name}: {exc}") from None
        self._batch = np.zeros((cfg.max_batch, 3, self.height, self.width), np.float32)
        # Optional format/country head ([N, M] softmax) with its patterns in the metadata (``formats``).
        fmt = [o for o in self.engine.outputs if len(o.shape) == 2]
        patterns = self.engine.metadata.get("formats", "")
        self.formats = patterns.split("\n") if cfg.decoder == "heads" and fmt and patterns else None
        self.format_output = fmt[0].name if self.formats else None

    # -- crops
    def select(self, detections: Detections) -> Detections:
        """The plate boxes this reader reads: class filter, then min/max size."""
        labels = detections.labels
        cls = self.cfg.plate_class
        if cls in labels:
            plates = detections.select(detections.class_ids == labels.index(cls))
        elif cls.lstrip("-").isdigit():
            plates = detections.select(detections.class_ids == int(cls))
        else:
            return Detections.empty(labels)
        wh = plates.boxes[:, 2:] - plates.boxes[:, :2]
        ok = np.ones(len(plates), bool)
        (mnw, mnh), (mxw, mxh) = self.cfg.min_size, self.cfg.max_size
        ok &= (wh[:, 0] >= mnw) & (wh[:, 1] >= mnh)
        if mxw > 0:
            ok &= wh[:, 0] <= mxw
        if mxh > 0:
            ok &= wh[:, 1] <= mxh
        return plates.select(ok)

    def crop_boxes(self, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        """Padded integer crop windows [N, 4] clipped to the frame."""
        wh = boxes[:, 2:] - boxes[:, :2]
        pad = np.concatenate([wh, wh], axis=1) * self.cfg.padding
        grown = boxes + pad * np.array([-1, -1, 1, 1], np.float32)
        out = np.round(grown).astype(np.int64)
        np.clip(out[:, 0::2], 0, width, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, height, out=out[:, 1::2])
        return out

    def __call__(self, bgr: np.ndarray, detections: Detections, stamp_ns: int = 0) -> list[PlateReading]:
        with self.latency.measure(self._crop_name):
            plates = self.select(detections)
            windows = self.crop_boxes(plates.boxes, bgr.shape[1], bgr.shape[0])
            valid = (windows[:, 2] > windows[:, 0]) & (windows[:, 3] > windows[:, 1])
            plates, windows = plates.select(valid), windows[valid]
            crops = [bgr[y1:y2, x1:x2] for x1, y1, x2, y2 in windows]
        if not crops:
            return []
        texts = self.read_crops(crops)
        return [
            PlateReading(plates.boxes[i], t, c, float(plates.scores[i]))
            for i, (t, c) in enumerate(texts)
            if t and c >= self.cfg.min_confidence
        ]

    def read_crops(self, crops: Sequence[np.ndarray], per_char: bool = False) -> list[tuple[str, float]]:
        """Text and confidence of each BGR crop, batched through the reader (``per_char``: plus each
        character's probability, see ``vision/text.py``)."""
        pre, inf, post = self._names
        step = self._static_batch or self.cfg.max_batch
        results: list[tuple[str, float]] = []
        for start in range(0, len(crops), step):
            chunk = list(crops[start : start + step])
            n = self._static_batch or len(chunk)
            with self.latency.measure(pre):
                # A fixed-batch engine gets its batch filled up with copies of the first crop.
                padded = chunk + chunk[:1] * (n - len(chunk))
                batch = prepare_text_crops(padded, self.height, self.width, out=self._batch_view(n))
            outputs = self.engine.infer({self.input_name: batch})
            self.latency.record(inf, self.engine.last_latency_ms)
            with self.latency.measure(post):
                results += self._decode(outputs, len(chunk), per_char)
        return results

    def _batch_view(self, n: int) -> np.ndarray:
        if n > len(self._batch):
            self._batch = np.zeros((n, 3, self.height, self.width), np.float32)
        return self._batch[:n]

    def _decode(
        self, outputs: dict[str, np.ndarray], n: int, per_char: bool = False
    ) -> list[tuple[str, float]]:
        probs = outputs[self.output_name][:n]
        if self.cfg.decoder == "ctc":
            return ctc_greedy_decode(probs, self.charset, blank=self.cfg.blank_index, per_char=per_char)
        if self.format_output is not None:
            return heads_decode(
                probs,
                self.charset,
                pad=self.cfg.blank_index,
                formats=self.formats,
                format_probs=outputs[self.format_output][:n],
                per_char=per_char,
            )
        return heads_decode(probs, self.charset, pad=self.cfg.blank_index, per_char=per_char)
