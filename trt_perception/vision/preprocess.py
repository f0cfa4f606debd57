"""Image -> network input tensor, written into preallocated buffers (no per-frame allocation).

Resize or letterbox (aspect kept, pad value), BGR->RGB, ``x * scale`` then ``(x - mean) / std`` per
channel, HWC -> NCHW (or NHWC), float32 or float16. ``Letterbox`` maps boxes back to source pixels.
Presets follow the common exporters (Ultralytics YOLO, TF Object Detection SSD, ImageNet, PilotNet).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np


@dataclass(frozen=True)
class PreprocessConfig:
    width: int
    height: int
    letterbox: bool = True
    pad_value: float = 114
    #: Letterbox placement: centred (Ultralytics) or top-left (YOLOX, PaddleOCR text lines).
    center: bool = True
    #: Letterbox size: False rounds each axis (Ultralytics); True is YOLOX's ``preproc``: one ratio
    #: ``r = min(H/h, W/w)``, resized to ``(int(w * r), int(h * r))``, boxes mapped back by ``1/r``.
    truncate: bool = False
    rgb: bool = True
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: str = "NCHW"
    dtype: str = "float32"
    interpolation: int = cv2.INTER_LINEAR

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"input size must be positive, got {self.width}x{self.height}")
        if self.layout not in ("NCHW", "NHWC"):
            raise ValueError(f"layout must be NCHW or NHWC, got '{self.layout}'")
        if self.dtype not in ("float32", "float16", "uint8"):
            raise ValueError(f"dtype must be float32, float16 or uint8, got '{self.dtype}'")
        identity = self.scale == 1.0 and set(self.mean) == {0.0} and set(self.std) == {1.0}
        if self.dtype == "uint8" and not identity:
            raise ValueError("a uint8 input takes raw pixels: scale must be 1, mean 0 and std 1")

    def shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        if self.layout == "NCHW":
            return (batch, 3, self.height, self.width)
        return (batch, self.height, self.width, 3)


#: Presets for common exporters; ``preset(name, width=..., height=...)`` overrides the size.
PRESETS: dict[str, PreprocessConfig] = {
    # Ultralytics YOLOv5/v8/v11 export: letterbox with grey 114, RGB, /255.
    "yolo": PreprocessConfig(640, 640, letterbox=True, pad_value=114, rgb=True, scale=1 / 255.0),
    # YOLOX (Megvii ``yolox/data/data_augment.py`` ``preproc``): one ratio, truncated size, pad 114 at
    # the top-left, BGR, raw 0..255 (no normalisation).
    "yolox": PreprocessConfig(
        640, 640, letterbox=True, pad_value=114, center=False, truncate=True, rgb=False, scale=1.0
    ),
    # TF Object Detection API SSD: plain resize to 300x300, RGB, x*2/255-1.
    "ssd_tf": PreprocessConfig(
        300, 300, letterbox=False, rgb=True, scale=2 / 255.0, mean=(1.0, 1.0, 1.0), std=(1.0, 1.0, 1.0)
    ),
    # torchvision / ImageNet normalisation.
    "imagenet": PreprocessConfig(
        224,
        224,
        letterbox=False,
        rgb=True,
        scale=1 / 255.0,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
    ),
    # BehaviorMetrics PilotNet: 66x200 RGB in [0, 1].
    "pilotnet": PreprocessConfig(200, 66, letterbox=False, rgb=True, scale=1 / 255.0),
}


def preset(name: str, **overrides: object) -> PreprocessConfig:
    try:
        base = PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown preprocessing preset '{name}'; choose one of {', '.join(PRESETS)}"
        ) from None
    return replace(base, **overrides)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Letterbox:
    """How a source image was placed in the network input: ``net = src * scale + pad``."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    src_width: int
    src_height: int

    def to_source(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Network-pixel boxes ``[N, 4]`` (x1, y1, x2, y2) -> source pixels, clipped to the image."""
        out = np.empty_like(boxes_xyxy, dtype=np.float32)
        out[:, 0::2] = (boxes_xyxy[:, 0::2] - self.pad_x) / self.scale_x
        out[:, 1::2] = (boxes_xyxy[:, 1::2] - self.pad_y) / self.scale_y
        np.clip(out[:, 0::2], 0, self.src_width, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, self.src_height, out=out[:, 1::2])
        return out


#: Source sizes whose placement and buffers are kept.
_MAX_PLANS = 8


class _Plan:
    """Everything one source size needs, worked out once: placement, resized size and buffers."""

    __slots__ = ("box", "offset", "planes", "resized", "size", "split_into", "whole")

    def __init__(self, pre: Preprocessor, w: int, h: int) -> None:
        c = pre.config
        self.box = box = pre.placement(w, h)
        self.size = nw, nh = pre.resized_size(w, h)
        self.offset = (int(box.pad_x), int(box.pad_y))
        self.resized = np.empty((nh, nw, 3), np.uint8)
        # Channel planes in OUTPUT order, one contiguous [3, nh, nw] block: ``cv2.split`` writes source
        # channel ``src_channel[c]`` into plane c, so the BGR->RGB swap is free.
        self.planes = np.empty((3, nh, nw), np.uint8)
        order = sorted(range(3), key=lambda c: pre._src_channel[c])
        self.split_into = [self.planes[c] for c in order]
        # No letterbox bars and one gain/bias for all channels (e.g. YOLO's /255): the three planes
        # are normalised by ONE call over the [3 * nh, nw] block straight into the tensor.
        self.whole = (
            c.layout == "NCHW"
            and (nw, nh) == (c.width, c.height)
            and len(set(pre._gain)) == 1
            and len(set(pre._bias)) == 1
        )


class Preprocessor:
    """Writes frames into one preallocated ``[batch, ...]`` tensor; nothing is allocated per frame.

    NCHW (the common case) takes one resize into a reused buffer, one ``cv2.split`` into reused
    channel planes (in output order, so the BGR->RGB swap costs nothing), then ``cv2.addWeighted``
    converts to float, applies the affine normalisation and writes straight into the tensor: once
    for the whole [3, H, W] block when the frame fills the input and the normalisation is the same
    for all channels (YOLO's /255), else once per channel plane. The placement and buffers of each
    source size are worked out once; letterbox padding is written once per frame size.
    """

    def __init__(self, config: PreprocessConfig, batch: int = 1) -> None:
        if batch <= 0:
            raise ValueError(f"batch must be positive, got {batch}")
        self.config = config
        self.tensor = np.zeros(config.shape(batch), dtype=np.dtype(config.dtype))
        std = np.asarray(config.std, np.float64)
        # x * scale, then (x - mean) / std  ==  x * (scale / std) - mean / std
        self._gain = (config.scale / std).tolist()
        self._bias = (-np.asarray(config.mean, np.float64) / std).tolist()
        self._cv_depth = {"float32": cv2.CV_32F, "float16": cv2.CV_16F, "uint8": cv2.CV_8U}[config.dtype]
        # Source channel (BGR order) feeding output channel c.
        self._src_channel = (2, 1, 0) if config.rgb else (0, 1, 2)
        self._plans: dict[tuple[int, int], _Plan] = {}
        self._placed: list[tuple[int, int] | None] = [None] * batch
        if config.layout == "NHWC":
            # cvtColor already puts channels in output order; mean/std/gain are per output channel.
            self._nhwc_gain = (*self._gain, 0.0)
            self._nhwc_bias = (*self._bias, 0.0)

    @property
    def batch(self) -> int:
        return int(self.tensor.shape[0])

    def resized_size(self, src_width: int, src_height: int) -> tuple[int, int]:
        """(width, height) the frame is resized to before placement."""
        c = self.config
        if not c.letterbox:
            return c.width, c.height
        r = min(c.height / src_height, c.width / src_width)  # YOLOX's order of operands, bit for bit
        if c.truncate:
            return max(int(src_width * r), 1), max(int(src_height * r), 1)
        return max(round(src_width * r), 1), max(round(src_height * r), 1)

    def placement(self, src_width: int, src_height: int) -> Letterbox:
        c = self.config
        if not c.letterbox:
            return Letterbox(c.width / src_width, c.height / src_height, 0.0, 0.0, src_width, src_height)
        nw, nh = self.resized_size(src_width, src_height)
        px, py = ((c.width - nw) // 2, (c.height - nh) // 2) if c.center else (0, 0)
        if c.truncate:  # boxes go back through the one ratio, as YOLOX's demo does
            r = min(c.height / src_height, c.width / src_width)
            return Letterbox(r, r, px, py, src_width, src_height)
        return Letterbox(nw / src_width, nh / src_height, px, py, src_width, src_height)

    def pad_value_normalized(self) -> list[float]:
        """The pad colour as it appears in each output channel."""
        return [self.config.pad_value * g + b for g, b in zip(self._gain, self._bias)]

    def __call__(self, bgr: np.ndarray, index: int = 0) -> tuple[np.ndarray, Letterbox]:
        """Place ``bgr`` (H, W, 3 uint8) at batch ``index``; returns the whole tensor and the placement."""
        shape = bgr.shape
        if len(shape) != 3 or shape[2] != 3 or bgr.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 BGR image, got shape {shape} dtype {bgr.dtype}")
        h, w = shape[0], shape[1]
        plan = self._plans.get((w, h))
        if plan is None:
            if h == 0 or w == 0:
                raise ValueError(f"empty image {w}x{h}")
            if len(self._plans) >= _MAX_PLANS:  # sizes that keep changing (crops): no unbounded growth
                self._plans.clear()
            plan = self._plans[(w, h)] = _Plan(self, w, h)
        if not 0 <= index < self.batch:
            raise IndexError(f"batch index {index} outside [0, {self.batch})")
        (nw, nh), (px, py), resized = plan.size, plan.offset, plan.resized
        if (nw, nh) == (w, h):
            np.copyto(resized, bgr)
        else:
            cv2.resize(bgr, plan.size, dst=resized, interpolation=self.config.interpolation)
        if self._placed[index] != plan.size:
            self._fill_padding(index)  # a previous frame size left pixels in the padding
            self._placed[index] = plan.size
        if self.config.layout == "NCHW":
            self._write_nchw(plan, self.tensor[index], px, py)
        else:
            self._write_nhwc(resized, self.tensor[index, py : py + nh, px : px + nw])
        return self.tensor, plan.box

    def _write_nchw(self, plan: _Plan, dst: np.ndarray, px: int, py: int) -> None:
        cv2.split(plan.resized, plan.split_into)
        planes = plan.planes
        if self._cv_depth == cv2.CV_8U:
            np.copyto(dst[:, py : py + planes.shape[1], px : px + planes.shape[2]], planes)
            return
        if plan.whole:
            flat = planes.reshape(-1, planes.shape[2])
            out = dst.reshape(flat.shape)  # a view: the slot is contiguous
            cv2.addWeighted(flat, self._gain[0], flat, 0.0, self._bias[0], dst=out, dtype=self._cv_depth)
            return
        nh, nw = planes.shape[1:]
        for c in range(3):
            cv2.addWeighted(
                planes[c],
                self._gain[c],
                planes[c],
                0.0,
                self._bias[c],
                dst=dst[c, py : py + nh, px : px + nw],
                dtype=self._cv_depth,
            )

    def _write_nhwc(self, resized: np.ndarray, dst: np.ndarray) -> None:
        # Rare layout (TF exports): two passes with per-channel scalars, channel swap by cvtColor.
        src = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB) if self.config.rgb else resized
        if self._cv_depth == cv2.CV_8U:
            np.copyto(dst, src)
            return
        cv2.multiply(src, self._nhwc_gain, dst=dst, dtype=self._cv_depth)
        cv2.add(dst, self._nhwc_bias, dst=dst)

    def _fill_padding(self, index: int) -> None:
        pad = self.pad_value_normalized()
        if self.config.layout == "NCHW":
            for c in range(3):
                self.tensor[index, c] = pad[c]
        else:
            self.tensor[index] = pad
