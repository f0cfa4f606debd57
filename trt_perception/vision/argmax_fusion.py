"""Append the segmentation post-processing to an ONNX graph so the runtime hands back a uint8 mask.

A segmentation network ends in low-resolution logits ``[N, C, h, w]``. Upsampling all ``C`` channels
to the image size and taking the argmax on the host dominates the frame time (the Fast-SCNN table in
the seeds: 1.1 s of numpy on a Jetson Nano against 0.16 s fused). The modes, as in the EdgeTPU
"argmax fusion" and NobuoTsukamoto's Fast-SCNN scripts:

``argmax``           bilinear resize of the logits to the output size -> ArgMax (exactly the CPU result).
``fused-argmax``     bilinear resize to output/``divisor`` -> ArgMax -> nearest resize to the output size.
``reducemax``        like ``argmax`` but the class index comes from ReduceMax/Equal/ReduceMin (no ArgMax
                     op: TensorRT implements ArgMax with TopK, which failed for large maps in the seed).
``fused-reducemax``  the fused variant of ``reducemax``.

The class index of the ``argmax`` modes comes from ``argmax_impl``: ``op`` (ONNX ArgMax, the fastest
on ONNX Runtime CPU) or ``compare`` (a chain of Greater/Max/Where over the classes: elementwise only,
which TensorRT fuses into pointwise kernels without the TopK its ArgMax uses). Ties go to the lowest
class index in every variant, as in ``numpy.argmax``.

The mask is ``[N, H, W]`` uint8 named ``mask``. ONNX Runtime refuses ``Resize`` on int64, so the class
index is cast to uint8 before the nearest resize (``nearest_dtype="float32"`` casts after it instead,
for TensorRT versions without uint8 Resize). The output size is the network input's (read from the
graph at run time, so dynamic input shapes keep working), the logits' own, or a fixed ``(H, W)``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MODES = ("fused-argmax", "argmax", "reducemax", "fused-reducemax")
#: Name of the appended output and the metadata key describing the transform.
MASK_OUTPUT = "mask"
METADATA_KEY = "trt_perception.argmax_fusion"
_MIN_OPSET = 13  # Resize with optional roi/scales, Squeeze axes as an input


@dataclass(frozen=True)
class FusionConfig:
    mode: str = "fused-argmax"
    #: ``"input"`` (network input H, W), ``"logits"`` (logits h, w) or a fixed ``(H, W)``.
    output_size: str | tuple[int, int] = "input"
    #: Fused modes take the argmax at output size / divisor (2 as in the seed; 1 = no fusion).
    divisor: int = 2
    nearest_dtype: str = "uint8"
    logits: str | None = None
    image_input: str | None = None
    keep_logits: bool = False
    #: How the argmax modes find the index: op (ONNX ArgMax) | compare (elementwise chain).
    argmax_impl: str = "op"
    #: Fused modes: False ends the graph at the argmax (mask at output/divisor) for a caller that
    #: resizes the mask itself, once, straight to its own final size (the Segmenter does).
    final_resize: bool = True

    def __post_init__(self) -> None:
        if self.argmax_impl not in ("op", "compare"):
            raise ValueError(f"argmax_impl must be op or compare, got '{self.argmax_impl}'")
        if self.mode not in MODES:
            raise ValueError(f"unknown argmax mode '{self.mode}'; choose one of {', '.join(MODES)}")
        if self.divisor < 1:
            raise ValueError(f"divisor must be >= 1, got {self.divisor}")
        if self.nearest_dtype not in ("uint8", "float32"):
            raise ValueError(f"nearest_dtype must be uint8 or float32, got '{self.nearest_dtype}'")
        size = self.output_size
        if isinstance(size, str) and size not in ("input", "logits"):
            raise ValueError(f"output_size must be 'input', 'logits' or (H, W), got '{size}'")
        if not isinstance(size, str) and (len(size) != 2 or min(size) <= 0):
            raise ValueError(f"output_size must be two positive ints (H, W), got {size}")


def parse_size(text: str) -> str | tuple[int, int]:
    """``input`` / ``logits`` / ``HxW`` (e.g. ``768x1344``) -> FusionConfig.output_size."""
    if text in ("input", "logits"):
        return text
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"output size '{text}' is not 'input', 'logits' or HxW like 768x1344") from None
    return (h, w)


class _Builder:
    """Appends uniquely named nodes and constants to a graph."""

    def __init__(self, graph: onnx.GraphProto, opset: int) -> None:
        self.graph = graph
        self.opset = opset
        self._names = {n.name for n in graph.node} | {t.name for t in graph.initializer}
        self._names |= {v.name for v in list(graph.input) + list(graph.output) + list(graph.value_info)}

    def name(self, base: str) -> str:
        cand, i = f"argmax_fusion/{base}", 0
        while cand in self._names:
            i += 1
            cand = f"argmax_fusion/{base}_{i}"
        self._names.add(cand)
        return cand

    def const(self, base: str, value: np.ndarray) -> str:
        name = self.name(base)
        self.graph.initializer.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], base: str, output: str | None = None, **attrs: Any) -> str:
        out = output or self.name(base)
        self.graph.node.append(helper.make_node(op_type, inputs, [out], name=self.name(op_type), **attrs))
        return out

    def slice(self, x: str, start: int, end: int, base: str) -> str:
        starts = self.const(f"{base}_start", np.array([start], np.int64))
        ends = self.const(f"{base}_end", np.array([end], np.int64))
        return self.op("Slice", [x, starts, ends], base)

    def reduce(self, op_type: str, x: str, base: str) -> str:
        """Reduce over the class axis, keeping it (axes moved from attribute to input in opset 18)."""
        if self.opset >= 18:
            axes = self.const(f"{base}_axes", np.array([1], np.int64))
            return self.op(op_type, [x, axes], base, keepdims=1)
        return self.op(op_type, [x], base, axes=[1], keepdims=1)

    def resize(self, x: str, sizes: str, mode: str, base: str) -> str:
        attrs: dict[str, Any] = {"mode": mode, "coordinate_transformation_mode": "half_pixel"}
        if mode == "nearest":
            attrs["nearest_mode"] = "round_prefer_floor"
        return self.op("Resize", [x, "", "", sizes], base, **attrs)


def fuse_argmax(model: onnx.ModelProto, config: FusionConfig) -> onnx.ModelProto:
    """A copy of ``model`` with the mask subgraph appended (and the logits output dropped by default)."""
    model = _at_least_opset(model, _MIN_OPSET)
    graph = model.graph
    logits = _pick_output(graph, config.logits)
    image = _pick_input(graph, config.image_input)
    num_classes = _class_count(graph, logits)
    if num_classes is not None and num_classes > 255:
        raise ValueError(f"logits '{logits}' has {num_classes} classes; a uint8 mask holds at most 256")
    b = _Builder(graph, _opset(model))

    logits_shape = b.op("Shape", [logits], "logits_shape")
    nc = b.slice(logits_shape, 0, 2, "nc")
    if config.output_size == "input":
        out_hw = b.slice(b.op("Shape", [image], "input_shape"), 2, 4, "out_hw")
    elif config.output_size == "logits":
        out_hw = b.slice(logits_shape, 2, 4, "out_hw")
    else:
        out_hw = b.const("out_hw", np.array(config.output_size, np.int64))

    fused = config.mode.startswith("fused") and config.divisor > 1
    if fused:
        work_hw = b.op(
            "Div", [out_hw, b.const("divisor", np.array([config.divisor] * 2, np.int64))], "work_hw"
        )
    else:
        work_hw = out_hw
    scores = logits
    if config.output_size != "logits" or fused:
        sizes = b.op("Concat", [nc, work_hw], "bilinear_sizes", axis=0)
        scores = b.resize(logits, sizes, "linear", "upsampled_logits")

    if config.mode.endswith("reducemax"):
        if num_classes is None:
            raise ValueError(f"mode '{config.mode}' needs a static class count on '{logits}'")
        index = _reducemax_argmax(b, scores, num_classes)
    elif _use_compare(config, num_classes):
        assert num_classes is not None
        index = _compare_argmax(
            b, scores, num_classes, np.uint8 if config.nearest_dtype == "uint8" else np.float32
        )
    else:
        index = b.op("ArgMax", [scores], "class_index", axis=1, keepdims=1)

    mask_dtype = TensorProto.UINT8 if config.nearest_dtype == "uint8" else TensorProto.FLOAT
    mask = b.op("Cast", [index], "class_index_cast", to=mask_dtype)
    if fused and config.final_resize:
        n1 = b.slice(b.op("Shape", [mask], "mask_shape"), 0, 2, "n1")
        sizes = b.op("Concat", [n1, out_hw], "nearest_sizes", axis=0)
        mask = b.resize(mask, sizes, "nearest", "mask_upsampled")
    if mask_dtype != TensorProto.UINT8:
        mask = b.op("Cast", [mask], "mask_uint8", to=TensorProto.UINT8)
    axes = b.const("squeeze_axes", np.array([1], np.int64))
    b.op("Squeeze", [mask, axes], "mask", output=MASK_OUTPUT)

    out_info = helper.make_tensor_value_info(MASK_OUTPUT, TensorProto.UINT8, _mask_dims(graph, image, config))
    kept = [o for o in graph.output if config.keep_logits and o.name == logits]
    del graph.output[:]
    graph.output.extend([*kept, out_info])
    meta = {
        "mode": config.mode,
        "divisor": config.divisor,
        "output_size": config.output_size,
        "num_classes": num_classes,
        "argmax_impl": config.argmax_impl,
        "mask_divisor": config.divisor if fused and not config.final_resize else 1,
    }
    _set_metadata(model, METADATA_KEY, json.dumps(meta))
    onnx.checker.check_model(model)
    return model


def fuse_argmax_file(src: str | Path, dst: str | Path, config: FusionConfig) -> Path:
    """Load ``src``, append the mask subgraph and save to ``dst``; returns ``dst``."""
    model = onnx.load(str(src))
    fused = fuse_argmax(model, config)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(fused, str(dst))
    return dst


def fusion_info(model: onnx.ModelProto) -> dict[str, object] | None:
    """The transform's parameters when ``model`` already carries the mask subgraph."""
    for p in model.metadata_props:
        if p.key == METADATA_KEY:
            return dict(json.loads(p.value))
    return None


def config_dict(config: FusionConfig) -> dict[str, object]:
    return asdict(config)


def _use_compare(config: FusionConfig, num_classes: int | None) -> bool:
    if config.argmax_impl != "compare":
        return False
    if num_classes is None:
        raise ValueError("argmax_impl 'compare' needs a static class count on the logits")
    return True


def _compare_argmax(b: _Builder, scores: str, num_classes: int, dtype: type) -> str:
    """Running maximum over the class planes; a strictly greater class takes over (ties: lowest index)."""
    split = b.const("split_sizes", np.ones(num_classes, np.int64))
    planes = [b.name(f"class_{c}") for c in range(num_classes)]
    b.graph.node.append(helper.make_node("Split", [scores, split], planes, name=b.name("Split"), axis=1))
    best, index = planes[0], b.const("index_0", np.zeros((1, 1, 1, 1), dtype))
    for c in range(1, num_classes):
        wins = b.op("Greater", [planes[c], best], f"wins_{c}")
        index = b.op("Where", [wins, b.const(f"index_{c}", np.array(c, dtype)), index], f"index_upto_{c}")
        if c < num_classes - 1:
            best = b.op("Max", [best, planes[c]], f"max_upto_{c}")
    return index


def _reducemax_argmax(b: _Builder, scores: str, num_classes: int) -> str:
    """First index of the channel maximum from reductions: min(c where x_c == max_c x), ties -> lowest."""
    peak = b.reduce("ReduceMax", scores, "class_max")
    is_peak = b.op("Equal", [scores, peak], "is_max")
    index = b.const("class_ids", np.arange(num_classes, dtype=np.float32).reshape(1, -1, 1, 1))
    never = b.const("not_max", np.array(float(num_classes), np.float32))
    candidates = b.op("Where", [is_peak, index, never], "max_ids")
    return b.reduce("ReduceMin", candidates, "first_max_id")


def _opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise ValueError("model has no default-domain opset import")


def _at_least_opset(model: onnx.ModelProto, version: int) -> onnx.ModelProto:
    if _opset(model) >= version:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy
    from onnx import version_converter

    return version_converter.convert_version(model, version)


def _pick_output(graph: onnx.GraphProto, name: str | None) -> str:
    names = [o.name for o in graph.output]
    if name is not None:
        if name not in names:
            raise ValueError(f"model has no output '{name}'; outputs are {names}")
        return name
    if "logits" in names:
        return "logits"
    if len(names) != 1:
        raise ValueError(f"model has outputs {names}; name the logits tensor")
    return names[0]


def _pick_input(graph: onnx.GraphProto, name: str | None) -> str:
    init = {t.name for t in graph.initializer}
    names = [i.name for i in graph.input if i.name not in init]
    if name is not None:
        if name not in names:
            raise ValueError(f"model has no input '{name}'; inputs are {names}")
        return name
    if len(names) != 1:
        raise ValueError(f"model has inputs {names}; name the image input")
    return names[0]


def _dims(graph: onnx.GraphProto, name: str) -> list[int | str | None]:
    for v in list(graph.output) + list(graph.input) + list(graph.value_info):
        if v.name == name and v.type.HasField("tensor_type"):
            out: list[int | str | None] = []
            for d in v.type.tensor_type.shape.dim:
                out.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
            return out
    return []


def _class_count(graph: onnx.GraphProto, logits: str) -> int | None:
    dims = _dims(graph, logits)
    if dims and len(dims) != 4:
        raise ValueError(f"logits '{logits}' must be [N, C, H, W]; its shape is {dims}")
    return dims[1] if dims and isinstance(dims[1], int) and dims[1] > 0 else None


def _mask_dims(graph: onnx.GraphProto, image: str, config: FusionConfig) -> list[int | str | None]:
    img = _dims(graph, image)
    batch = img[0] if img else "N"
    if config.mode.startswith("fused") and config.divisor > 1 and not config.final_resize:
        return [batch, "h", "w"]
    if isinstance(config.output_size, tuple):
        return [batch, *config.output_size]
    if config.output_size == "input" and len(img) == 4:
        return [batch, img[2] or "H", img[3] or "W"]
    return [batch, "H", "W"]


def _set_metadata(model: onnx.ModelProto, key: str, value: str) -> None:
    for p in model.metadata_props:
        if p.key == key:
            p.value = value
            return
    model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
