"""What an argmax fusion is asked to do (``FusionConfig``), the metadata key a fused model carries and
the text forms of its settings, without onnx: the segmenter reads these at import, and only a model
that is actually fused pays for onnx (``argmax_fusion``, ~1.4 s to import)."""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("fused-argmax", "argmax", "reducemax", "fused-reducemax")
ARGMAX_IMPLS = ("op", "compare", "delta")
#: Where the fused graph runs (``argmax_fusion.TARGETS`` gives each its class index type).
TARGET_NAMES = ("tensorrt", "cpu")
#: Name of the appended output and the metadata key describing the transform.
MASK_OUTPUT = "mask"
METADATA_KEY = "trt_perception.argmax_fusion"


@dataclass(frozen=True)
class FusionConfig:
    mode: str = "fused-argmax"
    #: ``"input"`` (network input H, W), ``"logits"`` (logits h, w) or a fixed ``(H, W)``.
    output_size: str | tuple[int, int] = "input"
    #: Fused modes take the argmax at output size / divisor (2 as in the seed; 1 = no fusion); one int
    #: for both axes or ``(rows, cols)``.
    divisor: int | tuple[int, int] = 2
    logits: str | None = None
    image_input: str | None = None
    keep_logits: bool = False
    #: How the argmax modes find the index: op (ONNX ArgMax) | compare (elementwise chain) | delta
    #: (elementwise chain on class-0 difference planes, resized one by one).
    argmax_impl: str = "op"
    #: Fused modes: False ends the graph at the argmax (mask at output/divisor) for a caller that
    #: resizes the mask itself, once, straight to its own final size (the Segmenter does).
    final_resize: bool = True
    #: tensorrt (a graph TensorRT and ONNX Runtime both run) | cpu (ONNX Runtime only, faster there).
    target: str = "tensorrt"

    def __post_init__(self) -> None:
        if self.target not in TARGET_NAMES:
            raise ValueError(f"target must be one of {', '.join(TARGET_NAMES)}, got '{self.target}'")
        if self.argmax_impl not in ARGMAX_IMPLS:
            raise ValueError(
                f"argmax_impl must be one of {', '.join(ARGMAX_IMPLS)}, got '{self.argmax_impl}'"
            )
        if self.mode not in MODES:
            raise ValueError(f"unknown argmax mode '{self.mode}'; choose one of {', '.join(MODES)}")
        div = (self.divisor, self.divisor) if isinstance(self.divisor, int) else tuple(self.divisor)
        if len(div) != 2 or not all(isinstance(d, int) and d >= 1 for d in div):
            raise ValueError(f"divisor must be an int >= 1 or two of them (rows, cols), got {self.divisor}")
        object.__setattr__(self, "divisor", div if div[0] != div[1] else div[0])
        size = self.output_size
        if isinstance(size, str) and size not in ("input", "logits"):
            raise ValueError(f"output_size must be 'input', 'logits' or (H, W), got '{size}'")
        if not isinstance(size, str) and (len(size) != 2 or min(size) <= 0):
            raise ValueError(f"output_size must be two positive ints (H, W), got {size}")

    @property
    def divisors(self) -> tuple[int, int]:
        """(rows, cols) divisor."""
        d = self.divisor
        return (d, d) if isinstance(d, int) else (d[0], d[1])


def parse_divisor(text: str | int) -> int | tuple[int, int]:
    """``2`` / ``"2"`` (both axes) or ``"1x4"`` (rows x cols) -> FusionConfig.divisor."""
    if isinstance(text, int):
        return text
    try:
        parts = [int(v) for v in str(text).lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        return parts[0]
    if len(parts) != 2:
        raise ValueError(f"divisor '{text}' is not an int or ROWSxCOLS like 1x4")
    return (parts[0], parts[1])


def parse_size(text: str) -> str | tuple[int, int]:
    """``input`` / ``logits`` / ``HxW`` (e.g. ``768x1344``) -> FusionConfig.output_size."""
    if text in ("input", "logits"):
        return text
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"output size '{text}' is not 'input', 'logits' or HxW like 768x1344") from None
    return (h, w)
