"""Small deterministic ONNX models for the engine tests (built with onnx.helper, no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tensorrt_usable() -> bool:
    """TensorRT importable and a CUDA GPU present: what the real-build tests need."""
    from trt_perception.inference.cuda_memory import cuda_available
    from trt_perception.inference.factory import tensorrt_available

    return tensorrt_available() and cuda_available()


def make_convnet(path: Path, dynamic: bool = True, channels: int = 16, seed: int = 0) -> Path:
    """x[N,3,H,W] -> conv-relu-conv-relu -> feat[N,C,H/2,W/2]; -> pool-gemm -> y[N,4].

    Big enough for INT8 to matter and for per-layer sensitivity to differ, small enough to run fast.
    """
    rng = np.random.default_rng(seed)
    c = channels

    def init(name: str, arr: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(arr.astype(np.float32), name)

    inits = [
        init("w1", rng.normal(0, 0.3, (c, 3, 3, 3))),
        init("b1", rng.normal(0, 0.1, (c,))),
        init("w2", rng.normal(0, 0.15, (c, c, 3, 3))),
        init("b2", rng.normal(0, 0.1, (c,))),
        init("w3", rng.normal(0, 0.15, (c, c, 3, 3))),
        init("b3", rng.normal(0, 0.1, (c,))),
        init("wg", rng.normal(0, 0.3, (4, c))),
        init("bg", rng.normal(0, 0.1, (4,))),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["feat"], pads=[1, 1, 1, 1], name="conv3"),
        helper.make_node("GlobalAveragePool", ["feat"], ["gp"], name="pool"),
        helper.make_node("Flatten", ["gp"], ["fl"], name="flatten"),
        helper.make_node("Gemm", ["fl", "wg", "bg"], ["y"], transB=1, name="head"),
    ]
    n, h, w = ("N", "H", "W") if dynamic else (1, 32, 32)
    h2, w2 = ("H2", "W2") if dynamic else (16, 16)
    graph = helper.make_graph(
        nodes,
        "convnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, 3, h, w])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, 4]),
            helper.make_tensor_value_info("feat", TensorProto.FLOAT, [n, c, h2, w2]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"purpose": "engine tests"})
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
