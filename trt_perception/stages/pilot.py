"""PilotNet driving brain: camera frame -> (v, w), as BehaviorMetrics' PilotNet brains do it.

Pre-processing: keep rows ``crop_top:crop_bottom`` of the frame (BehaviorMetrics crops the lower half,
``image[240:480, 0:640]`` of the F1 car's 640x480 camera), resize to 200x66 (``cv2.INTER_LINEAR``),
BGR -> RGB, x / 255, NCHW float32. The network outputs ``cmd`` [N, 2] = (v, w) normalised to [-1, 1];
they are clipped to [-1, 1] and mapped linearly onto [v_min, v_max] and [w_min, w_max].
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..inference.engine import Encoded, Engine, EngineError
from ..inference.factory import open_engine
from ..inference.model_info import engine_info
from ..metrics.latency import END_TO_END, INFERENCE, POSTPROCESS, PREPROCESS, LatencyRecorder
from ..vision.preprocess import Preprocessor, preset
from .fields import setting

INPUT_HEIGHT, INPUT_WIDTH = 66, 200


@dataclass(frozen=True)
class PilotConfig:
    model: str = setting(help="PilotNet ONNX model or TensorRT engine (relative: cwd, then package share).")
    backend: str = setting(
        "auto",
        help="auto | onnxruntime | openvino | tensorrt (auto: .onnx -> ONNX Runtime, .xml -> OpenVINO, "
        ".engine/.plan -> TensorRT).",
    )
    input_name: str = setting("image", help="The network's image input.")
    output_name: str = setting("cmd", help="The network's (v, w) output, each in [-1, 1].")
    crop_top: int = setting(240, help="First image row kept (BehaviorMetrics: 240 of a 640x480 frame).")
    crop_bottom: int = setting(480, help="Row after the last one kept; 0 or less keeps rows to the bottom.")
    v_min: float = setting(2.0, help="Linear speed (m/s) for a network output of -1.")
    v_max: float = setting(12.0, help="Linear speed (m/s) for a network output of +1.")
    w_min: float = setting(-2.0, help="Angular speed (rad/s) for a network output of -1.")
    w_max: float = setting(2.0, help="Angular speed (rad/s) for a network output of +1.")

    def __post_init__(self) -> None:
        if self.v_max <= self.v_min or self.w_max <= self.w_min:
            raise ValueError(
                f"command ranges must be increasing: v [{self.v_min}, {self.v_max}], w [{self.w_min}, {self.w_max}]"
            )
        if self.crop_top < 0 or (self.crop_bottom > 0 and self.crop_bottom <= self.crop_top):
            raise ValueError(f"bad crop rows {self.crop_top}:{self.crop_bottom}")


@dataclass(frozen=True)
class PilotCommand:
    """Un-normalised command (m/s, rad/s), the raw network output and the stamp of its frame."""

    v: float
    w: float
    raw: tuple[float, float]
    stamp_ns: int


def crop_rows(bgr: np.ndarray, top: int, bottom: int) -> np.ndarray:
    """Rows ``top:bottom`` of the frame; frames shorter than ``bottom`` are an error, not a silent crop."""
    h = bgr.shape[0]
    end = h if bottom <= 0 else bottom
    if end > h or top >= end:
        raise ValueError(f"crop rows {top}:{end} do not fit a frame of height {h}; set crop_top/crop_bottom")
    return bgr[top:end]


def denormalise(raw: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """[-1, 1] -> [lo, hi] (clipped first)."""
    return lo + (np.clip(raw, -1.0, 1.0) + 1.0) * 0.5 * (hi - lo)


def normalise(value: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """[lo, hi] -> [-1, 1]; the inverse of ``denormalise`` (used to make training targets)."""
    return (np.asarray(value, np.float64) - lo) / (hi - lo) * 2.0 - 1.0


class Pilot:
    """``Pilot(cfg)(bgr, stamp_ns) -> PilotCommand``; records pre/inference/post/end-to-end latency."""

    def __init__(
        self, config: PilotConfig, latency: LatencyRecorder | None = None, engine: Engine | None = None
    ):
        self.config = config
        self.latency = latency or LatencyRecorder()
        self.engine = engine or open_engine(config.model, config.backend)
        spec = self.engine.input(config.input_name)
        expected = (INPUT_HEIGHT, INPUT_WIDTH)
        if len(spec.shape) != 4 or tuple(spec.shape[2:]) != expected:
            raise EngineError(
                f"{self.engine.path.name}: input '{spec.name}' is {spec}, PilotNet expects [N,3,{expected[0]},{expected[1]}]"
            )
        self.engine.output(config.output_name)  # fail early when the output name is wrong
        self.info = engine_info(self.engine)
        self.warnings = list(self.info.warnings)
        self.preprocess = Preprocessor(preset("pilotnet"), batch=1)
        self._feeds = {config.input_name: self.preprocess.tensor}
        self._batch_pre: Preprocessor | None = None  # grown on the first batch call of a larger size
        self.last_inference_ms = float("nan")

    def encode(self, bgr: np.ndarray) -> Encoded:
        """The network input of one camera frame: crop rows, resize, RGB/255 (the stage's buffer)."""
        c = self.config
        self.preprocess(crop_rows(bgr, c.crop_top, c.crop_bottom))
        return Encoded(self._feeds)

    def drive_batch(self, frames: Sequence[np.ndarray], stamps_ns: Sequence[int]) -> list[PilotCommand]:
        """Commands for several frames (e.g. several cars' cameras) in one engine call; needs a model
        with a dynamic batch dimension (the sample PilotNet's ``N``), else ``EngineError``."""
        c = self.config
        n = len(frames)
        spec = self.engine.input(c.input_name)
        most = self.engine.batch_limits(spec.name)[1]
        if most is not None and most < n:
            raise EngineError(
                f"{self.engine.path.name}: {n} frames in one call, but input {spec} takes at most {most}; "
                "drive frame by frame, or export the model with a dynamic batch dimension"
            )
        t0 = time.perf_counter()
        if self._batch_pre is None or self._batch_pre.batch < n:
            self._batch_pre = Preprocessor(preset("pilotnet"), batch=n)
        for i, bgr in enumerate(frames):
            self._batch_pre(crop_rows(bgr, c.crop_top, c.crop_bottom), i)
        t1 = time.perf_counter()
        out = self.engine.infer({c.input_name: self._batch_pre.tensor[:n]})[c.output_name]
        t2 = time.perf_counter()
        raw = out.reshape(n, 2).astype(np.float64)
        v = denormalise(raw[:, 0], c.v_min, c.v_max)
        w = denormalise(raw[:, 1], c.w_min, c.w_max)
        cmds = [
            PilotCommand(float(v[i]), float(w[i]), (float(raw[i, 0]), float(raw[i, 1])), int(stamps_ns[i]))
            for i in range(n)
        ]
        self._record(t0, t1, t2, time.perf_counter())
        return cmds

    def _record(self, t0: float, t1: float, t2: float, t3: float) -> None:
        """Stage times from the perf_counter marks: start, encoded, inferred, decoded."""
        self.last_inference_ms = (t2 - t1) * 1e3
        rec = self.latency
        rec.record(PREPROCESS, (t1 - t0) * 1e3)
        rec.record(INFERENCE, (t2 - t1) * 1e3)
        rec.record(POSTPROCESS, (t3 - t2) * 1e3)
        rec.record(END_TO_END, (t3 - t0) * 1e3)

    def warmup(self) -> None:
        """One whole pass on a grey frame tall enough for the crop rows."""
        c = self.config
        self(np.full((max(c.crop_bottom, c.crop_top + 1), 640, 3), 114, np.uint8))

    def __call__(self, bgr: np.ndarray, stamp_ns: int = 0) -> PilotCommand:
        c = self.config
        t0 = time.perf_counter()
        feeds = self.encode(bgr).feeds
        t1 = time.perf_counter()
        out = self.engine.infer(feeds)[c.output_name]
        t2 = time.perf_counter()
        if out.shape[-1] != 2:
            raise EngineError(
                f"{self.engine.path.name}: output '{c.output_name}' has shape {out.shape}, expected [N, 2]"
            )
        raw = out.reshape(-1, 2)[0].astype(np.float64)
        v = float(denormalise(raw[0], c.v_min, c.v_max))
        w = float(denormalise(raw[1], c.w_min, c.w_max))
        self._record(t0, t1, t2, time.perf_counter())
        return PilotCommand(v, w, (float(raw[0]), float(raw[1])), stamp_ns)
