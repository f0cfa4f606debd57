"""Plate reader stage (ROS-free): the secondary inference of the plate pipeline.

Like DeepStream's secondary ``nvinfer``: takes the detector's boxes of one class (``plate_class``,
``operate-on-class-ids``), skips boxes outside ``min_width``..``max_height`` (``input-object-min/max-*``),
pads and crops them from the full-resolution frame, runs the reader on batches of up to
``max_batch`` crops and decodes CTC greedy or per-character heads with ``vision/text.py`` (with the format/country head
when the model has one: each plate's format then restricts its heads to letters or digits).

Encoder (crops -> the reader's batch) -> Engine -> decoder (CTC or heads), composed once from the
model's ``ModelInfo``: decoder, character set and blank, input size (a dynamic input takes the
model's native size, e.g. PP-OCR's 48 x 320) come from the config's non-empty values, then the
model's metadata, then sidecars; a parameter contradicting the metadata is a startup error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..inference.engine import Encoded, Engine, EngineError
from ..inference.model_info import engine_info
from ..metrics.latency import LatencyRecorder
from ..vision.decoder import static
from ..vision.detections import Detections
from ..vision.text import charset_classes, ctc_greedy_decode, heads_decode, prepare_text_crops
from .fields import setting
from .model_stage import ModelStage

DECODERS = ("ctc", "heads")
#: Latency stage of box selection and cropping (``preprocess`` is the crops -> tensor part).
CROP = "crop"


@dataclass
class PlateReaderConfig:
    model: str = setting(help="Reader ONNX model, OpenVINO IR or TensorRT engine.")
    backend: str = setting("auto", help="auto | onnxruntime | openvino | tensorrt.")
    decoder: str = setting(
        "",
        help="ctc (probs [N,T,C], CTC greedy) | heads (probs [N,K,C], one softmax per character); empty takes it "
        "from the model's metadata (else ctc).",
    )
    charset: str = setting(
        "",
        help="Character file; empty reads the model metadata key 'character' (else plate_charset.txt).",
        path=True,
    )
    blank_index: int = setting(
        0, help="CTC blank class (heads: the 'no character' class); 0 takes the model's metadata (else 0)."
    )
    output: str = setting(
        "",
        help="Probabilities output read by the decoder; empty: the only output, else probs (CTC) / chars (heads).",
    )
    plate_class: str = setting("plate", help="Detector label (or id) whose boxes are read.")
    padding: float = setting(0.05, help="Crop growth on each side, as a fraction of the box size.")
    min_width: int = setting(
        16, help="Boxes narrower than this (px) are not read (DeepStream input-object-min-width)."
    )
    min_height: int = setting(8, help="Boxes lower than this (px) are not read.")
    max_width: int = setting(0, help="Boxes wider than this (px) are not read; 0 = no limit.")
    max_height: int = setting(0, help="Boxes higher than this (px) are not read; 0 = no limit.")
    max_batch: int = setting(16, help="Most crops per reader call.")
    input_width: int = setting(
        0,
        help="Reader input width; 0 takes it from the model (a dynamic one: its native size, else 4 x height).",
    )
    input_height: int = setting(0, help="Reader input height; 0 takes it from the model (a dynamic one: 32).")
    min_confidence: float = setting(
        0.0, help="Readings below this confidence are not published.", range=(0.0, 1.0)
    )


@dataclass
class PlateReading:
    """One read plate: its box (xyxy, source pixels), text and confidence."""

    box: np.ndarray
    text: str
    confidence: float
    #: Detection score of the plate box.
    score: float = 0.0


class PlateReader(ModelStage[PlateReaderConfig]):
    """``PlateReader(cfg)(bgr, detections) -> list[PlateReading]``, ``read_batch(frames, detections)``
    (all frames' plates in shared engine calls) and ``read_crops(crops)``."""

    def __init__(
        self,
        cfg: PlateReaderConfig,
        latency: LatencyRecorder | None = None,
        engine: Engine | None = None,
        prefix: str = "",
    ) -> None:
        if cfg.decoder and cfg.decoder not in DECODERS:
            raise ValueError(f"unknown plate decoder '{cfg.decoder}'; choose one of {', '.join(DECODERS)}")
        if cfg.max_batch <= 0:
            raise ValueError(f"max_batch must be positive, got {cfg.max_batch}")
        super().__init__(cfg, latency, engine, prefix, cfg.model)
        self._crop_name = prefix + CROP
        name = Path(cfg.model).name
        self.info = engine_info(
            self.engine,
            {"decoder": cfg.decoder, "charset": cfg.charset, "blank_index": cfg.blank_index},
        )
        self.warnings = list(self.info.warnings)
        self.decoder = self.info.decoder or "ctc"
        if self.decoder not in DECODERS:
            raise EngineError(f"{name}: {self.info.describe('decoder')} is not a plate decoder ({DECODERS})")
        self.blank_index = self.info.blank_index
        spec = self.engine.input()
        out = self.engine.output(_output_name(cfg, self.engine, self.decoder))
        if len(spec.shape) != 4 or static(spec.shape[1]) not in (3, None):
            raise EngineError(f"{name}: reader input {spec} must be [N, 3, H, W]")
        if len(out.shape) != 3:
            raise EngineError(
                f"{name}: decoder '{self.decoder}' expects an output [N, T|K, C] of probabilities; "
                f"the model has {out}"
            )
        self.input_name, self.output_name = spec.name, out.name
        native_w, native_h = self.info.input_size
        self.height = cfg.input_height or static(spec.shape[2]) or native_h or 32
        self.width = cfg.input_width or static(spec.shape[3]) or native_w or 4 * self.height
        self._static_batch = static(spec.shape[0])
        # Crops per engine call: the config's, capped by what the engine takes (a TensorRT profile).
        most = self.engine.batch_limits(spec.name)[1]
        self._step = self._static_batch or min(cfg.max_batch, most or cfg.max_batch)
        if not self.info.charset:
            raise EngineError(
                f"{name}: no character list: no 'charset' parameter, no 'character' in the model's metadata "
                f"(it has {sorted(self.engine.metadata)}), no plate_charset.txt beside it"
            )
        try:
            self.charset = charset_classes(
                self.info.charset,
                self.info.source("charset"),
                blank=self.blank_index,
                num_classes=static(out.shape[2]),
            )
        except ValueError as exc:
            raise EngineError(f"{name}: {exc}") from None
        self._batch = np.zeros((cfg.max_batch, 3, self.height, self.width), np.float32)
        # Optional format/country head ([N, M] softmax) with its patterns in the metadata (``formats``).
        patterns = self.engine.metadata.get("formats", "")
        fmt = [o.name for o in self.engine.outputs if o.name != out.name and len(o.shape) == 2]
        self.formats = patterns.split("\n") if self.decoder == "heads" and fmt and patterns else None
        self.format_output = ("format" if "format" in fmt else fmt[0]) if self.formats else None

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
        c = self.cfg
        mnw, mnh, mxw, mxh = c.min_width, c.min_height, c.max_width, c.max_height
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
        return self.read_batch([bgr], [detections])[0]

    def read_batch(
        self, frames: Sequence[np.ndarray], detections: Sequence[Detections]
    ) -> list[list[PlateReading]]:
        """The readings of each frame: the plate crops of all frames go through the reader together
        (``max_batch`` crops per engine call, or the model's own limit), as DeepStream's secondary
        inference does for a batch of sources."""
        with self.latency.measure(self._crop_name):
            plates = [self._plates(bgr, dets) for bgr, dets in zip(frames, detections)]
            crops = [crop for _, frame_crops in plates for crop in frame_crops]
        texts = self.read_crops(crops) if crops else []
        out: list[list[PlateReading]] = []
        start = 0
        for boxes, frame_crops in plates:
            mine = texts[start : start + len(frame_crops)]
            start += len(frame_crops)
            out.append(
                [
                    PlateReading(boxes.boxes[i], t, c, float(boxes.scores[i]))
                    for i, (t, c) in enumerate(mine)
                    if t and c >= self.cfg.min_confidence
                ]
            )
        return out

    def _plates(self, bgr: np.ndarray, detections: Detections) -> tuple[Detections, list[np.ndarray]]:
        """The plate boxes read in a frame and their padded crops (views of the frame)."""
        plates = self.select(detections)
        windows = self.crop_boxes(plates.boxes, bgr.shape[1], bgr.shape[0])
        valid = (windows[:, 2] > windows[:, 0]) & (windows[:, 3] > windows[:, 1])
        return plates.select(valid), [bgr[y1:y2, x1:x2] for x1, y1, x2, y2 in windows[valid]]

    def read_crops(self, crops: Sequence[np.ndarray], per_char: bool = False) -> list[tuple[str, float]]:
        """Text and confidence of each BGR crop, batched through the reader (``per_char``: plus each
        character's probability, see ``vision/text.py``)."""
        pre, inf, post = self._names
        step = self._step
        results: list[tuple[str, float]] = []
        for start in range(0, len(crops), step):
            chunk = list(crops[start : start + step])
            n = self._static_batch or len(chunk)
            with self.latency.measure(pre):
                # A fixed-batch engine gets its batch filled up with copies of the first crop.
                feeds = self.encode(chunk + chunk[:1] * (n - len(chunk))).feeds
            outputs = self.engine.infer(feeds)
            self.latency.record(inf, self.engine.last_latency_ms)
            with self.latency.measure(post):
                results += self._decode(outputs, len(chunk), per_char)
        return results

    def encode(self, crops: Sequence[np.ndarray]) -> Encoded:
        """The reader's input for a batch of BGR crops (the stage's buffer: copy to keep)."""
        batch = prepare_text_crops(crops, self.height, self.width, out=self._batch_view(len(crops)))
        return Encoded({self.input_name: batch})

    def warmup(self) -> None:
        """One whole pass (encode, engine, decode) on a grey crop."""
        self.read_crops([np.full((self.height, self.width, 3), 114, np.uint8)])

    def _batch_view(self, n: int) -> np.ndarray:
        if n > len(self._batch):
            self._batch = np.zeros((n, 3, self.height, self.width), np.float32)
        return self._batch[:n]

    def _decode(
        self, outputs: dict[str, np.ndarray], n: int, per_char: bool = False
    ) -> list[tuple[str, float]]:
        probs = outputs[self.output_name][:n]
        if self.decoder == "ctc":
            return ctc_greedy_decode(probs, self.charset, blank=self.blank_index, per_char=per_char)
        if self.format_output is not None:
            return heads_decode(
                probs,
                self.charset,
                pad=self.blank_index,
                formats=self.formats,
                format_probs=outputs[self.format_output][:n],
                per_char=per_char,
            )
        return heads_decode(probs, self.charset, pad=self.blank_index, per_char=per_char)


def _output_name(cfg: PlateReaderConfig, engine: Engine, decoder: str) -> str:
    """The probabilities output by name: the parameter, the only output, or the exporters' name."""
    names = [o.name for o in engine.outputs]
    if cfg.output:
        return cfg.output
    if len(names) == 1:
        return names[0]
    known = {"ctc": "probs", "heads": "chars"}[decoder]
    if known in names:
        return known
    raise EngineError(
        f"{Path(cfg.model).name}: outputs {names}: name the {decoder} probabilities (parameter 'output')"
    )
