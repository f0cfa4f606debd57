"""Segmenter stage (ROS-free): BGR frame -> ``SegmentationResult`` (uint8 class mask).

The network gives low-resolution logits ``[1, C, h, w]``; turning them into a mask is where the time
goes (see the seed's Fast-SCNN table). Three ways, chosen by ``argmax``:

``cpu``    bilinear-upsample the logits to the output size and take the argmax on the host: the exact
           result (OpenCV per-plane resize + SIMD running maximum, identical to ``numpy.argmax``).
``fused``  the model is rewritten once at load time (``modelops.argmax_fusion``: resize -> argmax ->
           resize nearest, or the reducemax variants) so the runtime returns the uint8 mask itself.
           Defaults: argmax on rows-only interpolated logits (divisor 1x4) with the ``delta`` chain.
           A model or TensorRT engine that already ends in a uint8 mask is used as it is.
``gpu``    TensorRT only: the logits stay on the GPU and ``inference.cuda_argmax`` upsamples and takes the
           argmax in one kernel on the engine's stream; only the mask is copied back.

``output_resolution`` is ``input`` (the camera frame's size) or ``network`` (the network input size).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np

from ..inference import cuda_memory as cm
from ..inference.cuda_argmax import CudaArgmax
from ..inference.engine import Encoded, Engine, EngineError
from ..inference.model_info import engine_info
from ..io.files import atomic_save
from ..metrics.latency import LatencyRecorder
from ..modelops.fusion_config import METADATA_KEY, FusionConfig, parse_divisor
from ..vision.preprocess import Preprocessor, preset
from .fields import about, setting
from .model_stage import ModelStage

ARGMAX_MODES = ("cpu", "fused", "gpu")
RESOLUTIONS = ("input", "network")
#: The sample segmenter's classes (``models/segmenter.md``), used when neither config nor model names them.
DEFAULT_CLASSES = ("background", "road", "lane_marking", "vehicle")
#: BGR colours per class for the overlay: background left as is, then Cityscapes-like colours.
DEFAULT_PALETTE = ((0, 0, 0), (128, 64, 128), (0, 220, 220), (142, 0, 0))
_STRIDE = 32  # the contract: dynamic H and W are multiples of 32


def format_divisor(divisor: int | tuple[int, int]) -> str:
    """``fusion_divisor`` as its parameter text: ``2`` or ``1x4`` (rows x cols)."""
    return str(divisor) if isinstance(divisor, int) else f"{divisor[0]}x{divisor[1]}"


def parse_color(text: str) -> tuple[int, int, int]:
    """A 'B,G,R' palette entry (three ints 0..255)."""
    try:
        b, g, r = (int(v) for v in str(text).split(","))
    except ValueError:
        raise ValueError(f"palette entry '{text}' is not 'B,G,R' (three ints 0..255)") from None
    if not all(0 <= v <= 255 for v in (b, g, r)):
        raise ValueError(f"palette entry '{text}' has values outside 0..255")
    return b, g, r


def _palette_texts(palette: list[tuple[int, int, int]]) -> list[str]:
    return [",".join(str(v) for v in color) for color in palette]


def _palette_colors(texts: list[str]) -> list[tuple[int, int, int]]:
    return [parse_color(t) for t in texts if str(t)]


@dataclass
class SegmenterConfig:
    model: str = setting(help="ONNX model or TensorRT engine (relative paths: cwd, then the package share).")
    backend: str = setting(
        "auto",
        help="auto | onnxruntime | openvino | tensorrt (auto: .onnx -> ONNX Runtime, .xml -> OpenVINO, "
        ".engine -> TensorRT).",
    )
    argmax: str = setting(
        "cpu",
        help="cpu (OpenCV per-plane upsample + running max, exact; ~5x faster than upsample + numpy argmax) | "
        "fused (argmax inside the graph, uint8 mask out: ~5x faster than upsample + numpy argmax for ~0.45 mIoU "
        "points with the default fusion_divisor 1x4; as fast as cpu on ORT CPU; for engines "
        "built with the mask in the graph) | gpu (TensorRT: exact NVRTC upsample+argmax kernel on the device "
        "logits). See bench/results/segmentation.json.",
    )
    output_resolution: str = setting(
        "input", help="Mask size: input (the camera image's) | network (the network input's)."
    )
    input_width: int = setting(
        0, help="Network input width (multiple of 32); 0 = model's, else the image's rounded."
    )
    input_height: int = setting(
        0, help="Network input height (multiple of 32); 0 = model's, else the image's rounded."
    )
    fusion_mode: str = setting(
        "fused-argmax", help="argmax=fused graph: fused-argmax | argmax | reducemax | fused-reducemax."
    )
    # (1, 4): rows interpolated, columns at the logits' own resolution -- the setting that meets issue
    # 6's targets on the sample (bench/results/segmentation.json).
    fusion_divisor: int | tuple[int, int] = setting(
        (1, 4),
        help="Fused modes take the argmax at network size / divisor, then resize nearest: ROWSxCOLS or one int "
        "for both (1x4 keeps thin near-horizontal road markings that 2 loses).",
        to_param=format_divisor,
        from_param=parse_divisor,
    )
    fusion_argmax_impl: str = setting(
        "delta",
        help="argmax=fused graph's argmax: delta (class-0 difference planes, fastest on ORT CPU) | compare | op.",
    )
    logits_output: str = setting("", help="Logits output name; empty picks logits or the only output.")
    class_names: list[str] = field(
        default_factory=list,
        metadata=about(
            help="Class names by index; empty reads the model metadata, then the sample classes.",
        ),
    )
    palette: list[tuple[int, int, int]] = field(
        default_factory=list,
        metadata=about(
            help="Overlay colours per class as 'B,G,R' strings; empty uses the built-in palette.",
            to_param=_palette_texts,
            from_param=_palette_colors,
        ),
    )
    overlay_alpha: float = setting(0.5, help="Overlay opacity of the class colours (0..1).", range=(0.0, 1.0))
    cache_dir: str = setting(
        "", help="Where argmax=fused writes the rewritten ONNX; empty uses the system temp folder."
    )

    def __post_init__(self) -> None:
        if self.argmax not in ARGMAX_MODES:
            raise ValueError(f"argmax must be one of {', '.join(ARGMAX_MODES)}, got '{self.argmax}'")
        if self.output_resolution not in RESOLUTIONS:
            raise ValueError(
                f"output_resolution must be one of {', '.join(RESOLUTIONS)}, got '{self.output_resolution}'"
            )
        for name in ("input_width", "input_height"):
            v = getattr(self, name)
            if v < 0 or v % _STRIDE:
                raise ValueError(f"{name} must be 0 or a positive multiple of {_STRIDE}, got {v}")
        FusionConfig(mode=self.fusion_mode, divisor=self.fusion_divisor, argmax_impl=self.fusion_argmax_impl)
        if not 0.0 <= self.overlay_alpha <= 1.0:
            raise ValueError(f"overlay_alpha must be in [0, 1], got {self.overlay_alpha}")


@dataclass
class SegmentationResult:
    """``mask`` [H, W] uint8 class indices at the input or network resolution."""

    mask: np.ndarray
    stamp_ns: int
    class_names: list[str]
    palette: np.ndarray  # [256, 3] uint8 BGR lookup table
    network_size: tuple[int, int]  # (width, height)

    def overlay(self, bgr: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """``bgr`` with non-background classes blended in their colours (mask resized if needed)."""
        h, w = bgr.shape[:2]
        mask = self.mask
        if mask.shape != (h, w):
            mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
        blended = cv2.addWeighted(bgr, 1.0 - alpha, self.palette[mask], alpha, 0.0)
        out = bgr.copy()
        cv2.copyTo(blended, (mask > 0).astype(np.uint8), out)
        return out

    def class_fractions(self) -> dict[str, float]:
        """Share of pixels per class (for diagnostics and quick checks)."""
        counts = np.bincount(self.mask.ravel(), minlength=len(self.class_names))
        total = max(int(counts.sum()), 1)
        return {n: float(c) / total for n, c in zip(self.class_names, counts)}


class Segmenter(ModelStage[SegmenterConfig]):
    """``Segmenter(cfg)(bgr, stamp_ns) -> SegmentationResult``; records preprocess/inference/postprocess."""

    def __init__(
        self,
        cfg: SegmenterConfig,
        latency: LatencyRecorder | None = None,
        engine: Engine | None = None,
        prefix: str = "",
    ) -> None:
        super().__init__(cfg, latency, engine, prefix, _model_for(cfg) if engine is None else cfg.model)
        self._input = self.engine.input()
        self._mask_out, self._logits_out = _pick_outputs(self.engine, cfg)
        if cfg.argmax == "fused" and self._mask_out is None:
            raise EngineError(
                f"{self.engine.path.name}: argmax 'fused' needs a uint8 mask output; build the engine from "
                "an ONNX rewritten by 'trt-perception fuse-argmax'"
            )
        self.num_classes = _class_count(self.engine, self._logits_out)
        self.info = engine_info(self.engine, {"labels": cfg.class_names})
        self.warnings = list(self.info.warnings)
        self.class_names = self._class_names()
        self.palette = make_palette(cfg.palette)
        self._static = _static_size(self._input.shape)
        self._pre: dict[tuple[int, int, int], Preprocessor] = {}  # (width, height, batch)
        self._gpu = (
            _GpuArgmax(self.engine, self._logits_out, self.num_classes) if cfg.argmax == "gpu" else None
        )
        # The mask decoder, chosen once: the model's own uint8 mask (fused) or the exact host argmax.
        self._decode = (
            self._decode_mask if self._mask_out is not None and cfg.argmax != "cpu" else self._decode_logits
        )

    def _class_names(self) -> list[str]:
        names = list(self.info.labels)
        if names:
            return names
        guess = list(DEFAULT_CLASSES) if self.num_classes == len(DEFAULT_CLASSES) else []
        names = guess or [f"class_{i}" for i in range(self.num_classes)]
        self.warnings.append(
            f"{self.engine.path.name}: no class names (no 'class_names' parameter, no 'classes' in the "
            f"model's metadata): using {names}"
        )
        return names

    # -- sizes
    def network_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) fed to the network for a ``width`` x ``height`` frame."""
        if self.cfg.input_width and self.cfg.input_height:
            return self.cfg.input_width, self.cfg.input_height
        if self._static is not None:
            return self._static
        return _round(width), _round(height)

    def _preprocessor(self, size: tuple[int, int], batch: int = 1) -> Preprocessor:
        key = (size[0], size[1], batch)
        pre = self._pre.get(key)
        if pre is None:
            cfg = preset("imagenet", width=size[0], height=size[1], letterbox=False)
            pre = self._pre[key] = Preprocessor(cfg, batch)
        return pre

    @property
    def logits_name(self) -> str | None:
        """The logits output the decoders read (None for a model that outputs only a mask)."""
        return None if self._logits_out is None else str(self._logits_out)

    def encode(self, bgr: np.ndarray) -> Encoded:
        """The network input of one frame, sized by ``network_size`` (the stage's buffer: copy to keep)."""
        h, w = bgr.shape[:2]
        tensor, _ = self._preprocessor(self.network_size(w, h))(bgr)
        return Encoded({self._input.name: tensor})

    # -- the stage
    def __call__(self, bgr: np.ndarray, stamp_ns: int = 0) -> SegmentationResult:
        if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8 or 0 in bgr.shape:
            raise ValueError(f"expected a non-empty (H, W, 3) uint8 BGR image, got {bgr.shape} {bgr.dtype}")
        h, w = bgr.shape[:2]
        size = self.network_size(w, h)
        out_w, out_h = (w, h) if self.cfg.output_resolution == "input" else size
        pre_name, inf_name, post_name = self._names
        with self.latency.measure(pre_name):
            feeds = self.encode(bgr).feeds
        if self._gpu is not None:
            mask = self._gpu(feeds, (out_h, out_w), self.latency, inf_name, post_name)
        else:
            with self.latency.measure(inf_name):
                outputs = self.engine.infer(feeds)
            with self.latency.measure(post_name):
                mask = self._decode(outputs, out_w, out_h)
        return SegmentationResult(mask, stamp_ns, self.class_names, self.palette, size)

    def segment_batch(
        self, frames: Sequence[np.ndarray], stamps_ns: Sequence[int]
    ) -> list[SegmentationResult]:
        """One engine call for several frames of one network size; needs a model with a dynamic batch
        dimension (the sample segmenter's is fixed at 1: ``EngineError``) and host argmax (cpu, fused)."""
        if len(frames) == 1:
            return [self(frames[0], stamps_ns[0])]
        name = self.engine.path.name
        most = self.engine.batch_limits(self._input.name)[1]
        if most is not None and most < len(frames):
            raise EngineError(
                f"{name}: {len(frames)} frames in one call, but input {self._input} takes at most {most}; "
                "segment frame by frame, or export the model with a dynamic batch dimension"
            )
        if self._gpu is not None:
            raise EngineError(
                f"{name}: argmax 'gpu' segments one frame per call; use cpu or fused for batches"
            )
        sizes = {self.network_size(f.shape[1], f.shape[0]) for f in frames}
        if len(sizes) != 1:
            raise ValueError(
                f"one batch needs one network size, these frames need {sorted(sizes)}: set input_width/height"
            )
        size = sizes.pop()
        pre_name, inf_name, post_name = self._names
        with self.latency.measure(pre_name):
            pre = self._preprocessor(size, len(frames))
            for i, bgr in enumerate(frames):
                pre(bgr, i)
        with self.latency.measure(inf_name):
            outputs = self.engine.infer({self._input.name: pre.tensor})
        results = []
        with self.latency.measure(post_name):
            for i, (bgr, stamp) in enumerate(zip(frames, stamps_ns)):
                out_w, out_h = (bgr.shape[1], bgr.shape[0]) if self.cfg.output_resolution == "input" else size
                mask = self._decode(outputs, out_w, out_h, i)
                results.append(SegmentationResult(mask, stamp, self.class_names, self.palette, size))
        return results

    def _decode_mask(
        self, outputs: dict[str, np.ndarray], width: int, height: int, item: int = 0
    ) -> np.ndarray:
        return _resize_mask(outputs[str(self._mask_out)][item], width, height)

    def _decode_logits(
        self, outputs: dict[str, np.ndarray], width: int, height: int, item: int = 0
    ) -> np.ndarray:
        return upsample_argmax(outputs[str(self._logits_out)][item], width, height)

    def warmup(self, width: int = 0, height: int = 0) -> None:
        """One pass on a grey frame (network size by default) so the first real frame is not slow."""
        w, h = self.network_size(width or 640, height or 384)
        self(np.full((height or h, width or w, 3), 114, np.uint8))


def upsample_argmax(logits: np.ndarray, width: int, height: int) -> np.ndarray:
    """``[C, h, w]`` logits -> bilinear (half-pixel, OpenCV) to ``height`` x ``width`` -> argmax, uint8.

    Exactly ``upsample_argmax_numpy`` (ties to the lowest class), 4-6x faster: each class plane is
    resized on its own and a running maximum with OpenCV's SIMD compare/max/copyTo picks the class,
    instead of ``numpy.argmax`` over a pixel-interleaved array.
    """
    c = logits.shape[0]
    size = (width, height)
    best = _resize_plane(logits[0], size)
    index = np.zeros((height, width), np.uint8)
    if c == 1:
        return index
    wins = np.empty((height, width), np.uint8)
    label = np.empty((height, width), np.uint8)
    for k in range(1, c):
        plane = _resize_plane(logits[k], size)
        cv2.compare(plane, best, cv2.CMP_GT, dst=wins)  # strictly greater: ties keep the lower class
        label.fill(k)
        cv2.copyTo(label, wins, index)
        if k < c - 1:
            cv2.max(best, plane, dst=best)
    return index


def upsample_argmax_numpy(logits: np.ndarray, width: int, height: int) -> np.ndarray:
    """The reference "upsample the logits, then numpy.argmax" (the benchmark's baseline)."""
    c, h, w = logits.shape
    hwc = np.ascontiguousarray(logits.transpose(1, 2, 0))
    if (w, h) != (width, height):
        if c <= 512:  # OpenCV's channel limit (CV_CN_MAX)
            hwc = cv2.resize(hwc, (width, height), interpolation=cv2.INTER_LINEAR)
        else:
            hwc = np.stack([cv2.resize(hwc[..., i], (width, height)) for i in range(c)], axis=-1)
        if hwc.ndim == 2:
            hwc = hwc[..., None]
    return hwc.argmax(axis=-1).astype(np.uint8)


def _resize_plane(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    plane = np.ascontiguousarray(plane, dtype=np.float32)
    if (plane.shape[1], plane.shape[0]) == size:
        return plane.copy()  # written in place by cv2.max
    return cv2.resize(plane, size, interpolation=cv2.INTER_LINEAR)


def make_palette(colors: list[tuple[int, int, int]] | tuple[tuple[int, int, int], ...] = ()) -> np.ndarray:
    """[256, 3] uint8 BGR lookup: the given colours, then DEFAULT_PALETTE, then well-spread generated ones."""
    lut = np.zeros((256, 3), np.uint8)
    # Pascal VOC bit-interleaved colours: distinct, deterministic, for any class count.
    idx = np.arange(256)
    for bit in range(8):
        for ch in range(3):
            lut[:, 2 - ch] |= (((idx >> (3 * bit + ch)) & 1) << (7 - bit)).astype(np.uint8)
    for i, col in enumerate(DEFAULT_PALETTE):
        lut[i] = col
    for i, col in enumerate(colors[:256]):
        if len(col) != 3:
            raise ValueError(f"palette colour {i} must be (B, G, R), got {col}")
        lut[i] = col
    return lut


# ---- helpers


def _model_for(cfg: SegmenterConfig) -> str:
    """The file to open: ``fused`` rewrites a plain ONNX once (cached by content and transform)."""
    path = Path(cfg.model)
    if cfg.argmax != "fused" or path.suffix != ".onnx":
        return cfg.model
    import onnx  # lazy: ~1.4 s to import, for argmax=fused on an ONNX model alone

    from ..modelops.argmax_fusion import fuse_argmax, fusion_info  # lazy: imports onnx

    if not path.is_file():
        raise EngineError(f"model file not found: {path}")
    data = path.read_bytes()
    model = onnx.load_from_string(data)
    if fusion_info(model) is not None:
        return cfg.model
    # The graph stops at the argmax; the stage resizes the small mask once, straight to the size it
    # publishes (camera or network), instead of in-graph to the network size and again on the host.
    fcfg = FusionConfig(
        mode=cfg.fusion_mode,
        divisor=cfg.fusion_divisor,
        argmax_impl=cfg.fusion_argmax_impl,
        logits=cfg.logits_output or None,
        final_resize=False,
        target="cpu",  # this file only runs on ONNX Runtime (an engine is fused with `trt-perception fuse-argmax`)
    )
    key = hashlib.sha256(data + repr(fcfg).encode()).hexdigest()[:16]
    cache = Path(cfg.cache_dir) if cfg.cache_dir else Path(tempfile.gettempdir()) / "trt_perception"
    out = cache / f"{path.stem}.{cfg.fusion_mode}.{key}.onnx"
    if not out.is_file():
        try:
            fused = fuse_argmax(model, fcfg)
        except ValueError as exc:
            raise EngineError(f"{path.name}: cannot fuse the argmax: {exc}") from exc
        atomic_save(out, lambda tmp: onnx.save(fused, str(tmp)))  # parallel nodes never read half a file
    return str(out)


def _pick_outputs(engine: Engine, cfg: SegmenterConfig) -> tuple[str | None, str | None]:
    """(uint8 mask output or None, float logits output or None); at least one must exist."""
    outs = engine.outputs
    masks = [o for o in outs if np.dtype(o.dtype) == np.uint8]
    floats = [o for o in outs if np.dtype(o.dtype).kind == "f"]
    if cfg.logits_output:
        named = [o for o in floats if o.name == cfg.logits_output]
        if not named:
            raise EngineError(
                f"{engine.path.name}: no float output '{cfg.logits_output}'; it has {[str(o) for o in outs]}"
            )
        floats = named
    elif len(floats) > 1:
        floats = [o for o in floats if o.name == "logits"] or floats[:1]
    mask = masks[0].name if masks else None
    logits = floats[0].name if floats else None
    if logits is None and (mask is None or cfg.argmax != "fused"):
        raise EngineError(
            f"{engine.path.name}: argmax '{cfg.argmax}' needs float logits [1, C, h, w]; outputs are "
            f"{[str(o) for o in outs]}"
        )
    if logits is not None:
        shape = engine.output(logits).shape
        if len(shape) != 4:
            raise EngineError(f"{engine.path.name}: logits '{logits}' must be [1, C, h, w], got {shape}")
    return mask, logits


def _class_count(engine: Engine, logits: str | None) -> int:
    if logits is not None:
        c = engine.output(logits).shape[1]
        if isinstance(c, int) and c > 0:
            return c

    fused = engine.metadata.get(METADATA_KEY)
    if fused:
        import json

        n = json.loads(fused).get("num_classes")
        if n:
            return int(n)
    return len(DEFAULT_CLASSES)


def _static_size(shape: tuple[Any, ...]) -> tuple[int, int] | None:
    h, w = shape[2], shape[3]
    if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
        return w, h
    return None


def _round(v: int) -> int:
    return max(_STRIDE, round(v / _STRIDE) * _STRIDE)


def _resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    if mask.shape == (height, width):
        return mask.copy()  # the engine's buffer is reused by the next call
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)  # pixel centres


class _GpuArgmax:
    """TensorRT logits left on the device -> NVRTC upsample+argmax on the engine's stream -> host mask."""

    def __init__(self, engine: Engine, logits: str | None, num_classes: int) -> None:
        if not engine.device_outputs or logits is None:
            raise EngineError(
                f"{engine.path.name}: argmax 'gpu' needs the TensorRT backend (device outputs) and float "
                f"logits; this is {engine.backend}. Use argmax 'fused' or 'cpu' here."
            )

        self.engine = engine
        self.logits = logits
        self.kernel = CudaArgmax(num_classes, engine.output(logits).dtype)
        self._cm = cm
        self._dev = cm.DeviceBuffer(1)
        self._host = cm.PinnedBuffer((1, 1), np.uint8)

    def __call__(
        self,
        feeds: dict[str, np.ndarray],
        out_hw: tuple[int, int],
        latency: LatencyRecorder,
        inf_name: str,
        post_name: str,
    ) -> np.ndarray:
        engine: Any = self.engine
        stream = int(engine.stream_handle)
        with latency.measure(inf_name):
            t = engine.infer(feeds, outputs_on_device=True)[self.logits]
        with latency.measure(post_name):  # includes waiting for the network: one sync per frame
            n, _, h, w = t.shape
            self._dev.ensure(n * out_hw[0] * out_hw[1])
            host = self._host.resize((out_hw[0], out_hw[1]))
            self.kernel.upsample_argmax(t.ptr, 1, h, w, self._dev.ptr, out_hw[0], out_hw[1], stream)
            self._cm.copy_dtoh_async(host, self._dev.ptr, cast(Any, _StreamRef(stream)))
            engine.synchronize()
            return host.copy()


class _StreamRef:
    """Duck-types ``cuda_memory.Stream`` for the copy helpers, for a stream owned elsewhere."""

    def __init__(self, handle: int) -> None:
        self.handle = handle
