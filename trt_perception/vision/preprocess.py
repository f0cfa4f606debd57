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
    pad_value: int = 114
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
        if self.dtype not in ("float32", "float16"):
            raise ValueError(f"dtype must be float32 or float16, got '{self.dtype}'")

    def shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        if self.layout == "NCHW":
            return (batch, 3, self.height, self.width)
        return (batch, self.height, self.width, 3)


#: Presets for common exporters; ``preset(name, width=..., height=...)`` overrides the size.
PRESETS: dict[str, PreprocessConfig] = {
    # Ultralytics YOLOv5/v8/v11 export: letterbox with grey 114, RGB, /255.
    "yolo": PreprocessConfig(640, 640, letterbox=True, pad_value=114, rgb=True, scale=1 / 255.0),
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


class Preprocessor:
    """Writes frames into one preallocated ``[batch, ...]`` tensor; reuses every buffer per frame size."""

    def __init__(self, config: PreprocessConfig, batch: int = 1) -> None:
        self.config = config
        self.tensor = np.zeros(config.shape(batch), dtype=np.dtype(config.dtype))
        self._canvas = np.full((config.height, config.width, 3), config.pad_value, np.uint8)
        self._resized: dict[tuple[int, int], np.ndarray] = {}
        self._last_size: tuple[int, int] | None = None
        std = np.asarray(config.std, np.float32)
        # x * scale, then (x - mean) / std  ==  x * (scale / std) - mean / std
        self._gain = (config.scale / std).astype(np.float32)
        self._bias = (-np.asarray(config.mean, np.float32) / std).astype(np.float32)
        self._work = np.empty((config.height, config.width, 3), np.float32)

    @property
    def batch(self) -> int:
        return self.tensor.shape[0]

    def placement(self, src_width: int, src_height: int) -> Letterbox:
        c = self.config
        if not c.letterbox:
            return Letterbox(c.width / src_width, c.height / src_height, 0.0, 0.0, src_width, src_height)
        s = min(c.width / src_width, c.height / src_height)
        nw, nh = round(src_width * s), round(src_height * s)
        return Letterbox(
            nw / src_width, nh / src_height, (c.width - nw) // 2, (c.height - nh) // 2, src_width, src_height
        )

    def __call__(self, bgr: np.ndarray, index: int = 0) -> tuple[np.ndarray, Letterbox]:
        """Place ``bgr`` (H, W, 3 uint8) at batch ``index``; returns the whole tensor and the placement."""
        if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 BGR image, got shape {bgr.shape} dtype {bgr.dtype}"
            )
        h, w = bgr.shape[:2]
        if h == 0 or w == 0:
            raise ValueError(f"empty image {w}x{h}")
        box = self.placement(w, h)
        c = self.config
        nw, nh = round(w * box.scale_x), round(h * box.scale_y)
        px, py = int(box.pad_x), int(box.pad_y)
        if (nw, nh) == (c.width, c.height):
            canvas = cv2.resize(bgr, (nw, nh), dst=self._canvas, interpolation=c.interpolation)
        else:
            resized = self._resized.get((nw, nh))
            if resized is None:
                resized = self._resized[(nw, nh)] = np.empty((nh, nw, 3), np.uint8)
            if self._last_size != (nw, nh):
                self._canvas[:] = c.pad_value  # the previous frame size left pixels in the padding
            cv2.resize(bgr, (nw, nh), dst=resized, interpolation=c.interpolation)
            self._canvas[py : py + nh, px : px + nw] = resized
            canvas = self._canvas
        self._last_size = (nw, nh)
        src = canvas[:, :, ::-1] if c.rgb else canvas
        np.multiply(src, self._gain, out=self._work)
        np.add(self._work, self._bias, out=self._work)
        if c.layout == "NCHW":
            self.tensor[index] = self._work.transpose(2, 0, 1)
        else:
            self.tensor[index] = self._work
        return self.tensor, box
