"""Append the segmentation post-processing to an ONNX graph so the runtime hands back a uint8 mask.

A segmentation network ends in low-resolution logits ``[N, C, h, w]``. Upsampling all ``C`` channels
to the image size and taking the argmax on the host dominates the frame time (the Fast-SCNN table in
the seeds: 1.1 s of numpy on a Jetson Nano against 0.16 s fused). The modes, as in the EdgeTPU
"argmax fusion" and NobuoTsukamoto's Fast-SCNN scripts:

``argmax``           bilinear resize of the logits to the output size -> ArgMax (exactly the CPU result).
``fused-argmax``     bilinear resize to output/``divisor`` -> ArgMax -> nearest resize to the output size.
                     ``divisor`` is one int or per axis ``(rows, cols)``: ``(1, 4)`` interpolates rows
                     only, which on a forward road camera keeps the thin, foreshortened (near-horizontal)
                     lane markings that a ``2`` (both axes) loses; see bench/results/segmentation.json.
``reducemax``        like ``argmax`` but the class index comes from ReduceMax/Equal/ReduceMin (no ArgMax
                     op: TensorRT implements ArgMax with TopK, which failed for large maps in the seed).
``fused-reducemax``  the fused variant of ``reducemax``.

The class index of the ``argmax`` modes comes from ``argmax_impl``: ``op`` (ONNX ArgMax), ``compare``
(a chain of Greater/Max/Where over the classes: elementwise only, which TensorRT fuses into pointwise
kernels without the TopK its ArgMax uses) or ``delta`` (the compare chain on ``C - 1`` difference planes
``logit_c - logit_0`` taken at the logits resolution, each resized on its own: bilinear resizing is
linear, so the argmax is the same up to float rounding, with a quarter less to resize for 4 classes and
no Split copy; the fastest on ONNX Runtime CPU, whose Resize dominates the subgraph). Ties go to the
lowest class index in every variant, as in ``numpy.argmax``.

The mask is ``[N, H, W]`` uint8 named ``mask``. How the class index travels to it depends on ``target``:

``tensorrt`` (default)  float32 (exact for the <= 256 classes a uint8 mask holds) through the compare
                        chain, the nearest resize and the Squeeze; only the node writing ``mask`` casts
                        to uint8. TensorRT 8.5-10.x and TensorRT-RTX parse it, and ONNX Runtime runs it.
``cpu``                 uint8 from the argmax on (ONNX Runtime CPU only): the compare chain on bytes is
                        ~9 % faster there (bench/results/segmentation.json), but TensorRT's parser rejects
                        the UINT8 intermediates. The Segmenter's in-process ONNX Runtime graph uses it.

Why float32 and not an integer type: ONNX Runtime refuses ``Resize`` on int64 (ArgMax's type); TensorRT
rejects a UINT8 tensor anywhere but at a network input or output (8.6+), resizes only FP32/FP16
(8.5-10.x), and 8.5 casts to UINT8 only from FP32/FP16 (sources: the ONNX limits in
``inference.trt_features``). The output size is the network input's (read from the graph at run time, so dynamic input
shapes keep working), the logits' own, or a fixed ``(H, W)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .fusion_config import MASK_OUTPUT, METADATA_KEY, FusionConfig

#: The class index's ONNX type per target (see the module docstring).
TARGETS = {"tensorrt": TensorProto.FLOAT, "cpu": TensorProto.UINT8}
_MIN_OPSET = 13  # Resize with optional roi/scales, Squeeze axes as an input


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

    def slice(self, x: str, start: int, end: int, base: str, axis: int = 0) -> str:
        starts = self.const(f"{base}_start", np.array([start], np.int64))
        ends = self.const(f"{base}_end", np.array([end], np.int64))
        axes = self.const(f"{base}_axes", np.array([axis], np.int64))
        return self.op("Slice", [x, starts, ends, axes], base)

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

    fused = config.mode.startswith("fused") and config.divisors != (1, 1)
    if fused:
        work_hw = b.op("Div", [out_hw, b.const("divisor", np.array(config.divisors, np.int64))], "work_hw")
    else:
        work_hw = out_hw
    resized = config.output_size != "logits" or fused
    index_type = TARGETS[config.target]

    # one class leaves the elementwise chains nothing to compare: ArgMax gives the all-zero mask
    if config.mode.endswith("reducemax") or config.argmax_impl == "op" or num_classes == 1:
        scores = logits
        if resized:
            sizes = b.op("Concat", [nc, work_hw], "bilinear_sizes", axis=0)
            scores = b.resize(logits, sizes, "linear", "upsampled_logits")
        if config.mode.endswith("reducemax"):
            if num_classes is None:
                raise ValueError(f"mode '{config.mode}' needs a static class count on '{logits}'")
            index = _reducemax_argmax(b, scores, num_classes)  # float32
            if index_type != TensorProto.FLOAT:
                index = b.op("Cast", [index], "class_index_cast", to=index_type)
        else:
            index = b.op("ArgMax", [scores], "class_index", axis=1, keepdims=1)
            index = b.op("Cast", [index], "class_index_cast", to=index_type)
    else:
        if num_classes is None:
            raise ValueError(f"argmax_impl '{config.argmax_impl}' needs a static class count on '{logits}'")
        plane_sizes = None
        if resized:
            n1 = b.op(
                "Concat",
                [b.slice(logits_shape, 0, 1, "n"), b.const("one", np.array([1], np.int64))],
                "n1",
                axis=0,
            )
            plane_sizes = b.op("Concat", [n1, work_hw], "plane_sizes", axis=0)
        if config.argmax_impl == "delta":
            planes = _delta_planes(b, logits, num_classes, plane_sizes)
        else:
            planes = _class_planes(b, logits, num_classes, plane_sizes)
        index = _compare_chain(b, planes, index_type, zero_first=config.argmax_impl == "delta")
    if fused and config.final_resize:
        n1 = b.slice(b.op("Shape", [index], "index_shape"), 0, 2, "n1")
        sizes = b.op("Concat", [n1, out_hw], "nearest_sizes", axis=0)
        index = b.resize(index, sizes, "nearest", "index_upsampled")
    axes = b.const("squeeze_axes", np.array([1], np.int64))
    if index_type == TensorProto.UINT8:
        b.op("Squeeze", [index, axes], "mask", output=MASK_OUTPUT)
    else:
        index = b.op("Squeeze", [index, axes], "index_squeezed")
        # the graph's only uint8 tensor is its output: TensorRT allows UINT8 nowhere else
        b.op("Cast", [index], "mask", output=MASK_OUTPUT, to=TensorProto.UINT8)

    out_info = helper.make_tensor_value_info(MASK_OUTPUT, TensorProto.UINT8, _mask_dims(graph, image, config))
    kept = [o for o in graph.output if config.keep_logits and o.name == logits]
    del graph.output[:]
    graph.output.extend([*kept, out_info])
    meta = {
        "mode": config.mode,
        "divisor": list(config.divisors),
        "output_size": config.output_size,
        "num_classes": num_classes,
        "argmax_impl": config.argmax_impl,
        "mask_divisor": list(config.divisors) if fused and not config.final_resize else [1, 1],
        "target": config.target,
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


def _class_planes(b: _Builder, logits: str, num_classes: int, sizes: str | None) -> list[str]:
    """One [N, 1, H, W] plane per class, each resized on its own (no Split copy of the large tensor)."""
    planes = []
    for c in range(num_classes):
        plane = b.slice(logits, c, c + 1, f"class_{c}", axis=1)
        planes.append(b.resize(plane, sizes, "linear", f"class_{c}_up") if sizes else plane)
    return planes


def _delta_planes(b: _Builder, logits: str, num_classes: int, sizes: str | None) -> list[str]:
    """``logit_c - logit_0`` for c >= 1 at the logits resolution, then resized: class 0 scores 0."""
    zero = b.slice(logits, 0, 1, "class_0", axis=1)
    planes = []
    for c in range(1, num_classes):
        delta = b.op("Sub", [b.slice(logits, c, c + 1, f"class_{c}", axis=1), zero], f"delta_{c}")
        planes.append(b.resize(delta, sizes, "linear", f"delta_{c}_up") if sizes else delta)
    return planes


def _compare_chain(b: _Builder, planes: list[str], index_type: int, zero_first: bool) -> str:
    """Running maximum over the planes; a strictly greater class takes over (ties: lowest index).
    ``zero_first``: the planes are classes 1.. against an implicit class 0 scoring 0. The index has
    ONNX type ``index_type`` (float32 or uint8, see ``TARGETS``)."""
    if zero_first:
        best = b.const("class_0_score", np.zeros((), np.float32))
        first = 1
    else:
        best, planes, first = planes[0], planes[1:], 1
    index = ""
    for k, plane in enumerate(planes):
        c = first + k
        wins = b.op("Greater", [plane, best], f"wins_{c}")
        won = b.op("Cast", [wins], f"wins_{c}_cast", to=index_type)  # 0 or 1
        if not index:
            index = won  # the first comparison's 0/1 is already the index
        else:
            # c exceeds every index so far, so max(index, c * won) is "c where it wins": Where with a
            # broadcast scalar is ~10-30x slower than Cast + Mul + Max on ONNX Runtime CPU
            value = np.array(c, helper.tensor_dtype_to_np_dtype(index_type))
            scaled = b.op("Mul", [won, b.const(f"index_{c}", value)], f"index_{c}_where_wins")
            index = b.op("Max", [index, scaled], f"index_upto_{c}")
        if k < len(planes) - 1:
            best = b.op("Max", [best, plane], f"max_upto_{c}")
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
    if config.mode.startswith("fused") and config.divisors != (1, 1) and not config.final_resize:
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
