"""Tiny ONNX graphs for the detection tests: a model whose outputs are given constants (any decoder
format can be served) while it takes a real image input of the right shape."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_DTYPES = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float16): TensorProto.FLOAT16,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.uint8): TensorProto.UINT8,
}


def constant_model(
    path: Path,
    outputs: Mapping[str, np.ndarray],
    input_name: str = "images",
    input_shape: tuple[int | str, ...] = (1, 3, 64, 64),
    input_dtype: type = np.float32,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Outputs are the given arrays whatever the input (the input is consumed by a zero-weight path
    so that ONNX Runtime keeps it)."""
    nodes, outs, inits = [], [], []
    in_dtype = _DTYPES[np.dtype(input_dtype)]
    # dummy = ReduceMax(input) cast to float, times 0 -> added to nothing: keeps the input "used".
    nodes.append(helper.make_node("ReduceMax", [input_name], ["_rmax"], keepdims=0))
    for name, value in outputs.items():
        arr = np.asarray(value)
        inits.append(numpy_helper.from_array(arr, f"{name}_value"))
        nodes.append(helper.make_node("Identity", [f"{name}_value"], [name]))
        outs.append(helper.make_tensor_value_info(name, _DTYPES[arr.dtype], list(arr.shape)))
    outs.append(helper.make_tensor_value_info("_rmax", in_dtype, []))
    graph = helper.make_graph(
        nodes,
        "constant",
        [helper.make_tensor_value_info(input_name, in_dtype, list(input_shape))],
        outs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def yolov8_output(
    boxes_cxcywh: np.ndarray, classes: np.ndarray, scores: np.ndarray, nc: int, n: int = 8400
) -> np.ndarray:
    """[1, 4+nc, n] with the given candidates first and the rest empty."""
    out = np.zeros((1, 4 + nc, n), np.float32)
    k = len(boxes_cxcywh)
    out[0, :4, :k] = np.asarray(boxes_cxcywh, np.float32).T
    out[0, 4 + np.asarray(classes), np.arange(k)] = scores
    return out
