"""A tiny stand-in segmenter with the ``models/segmenter.onnx`` contract, built with ``onnx.helper``.

input ``input`` [1, 3, H, W] ImageNet-normalised RGB (H, W dynamic multiples of 32), output ``logits``
[1, 4, H/4, W/4]. It averages 4x4 blocks and scores each class by the negative squared distance to a
palette colour (a 1x1 conv), so frames painted with ``PALETTE_BGR`` segment almost perfectly: enough to
test the post-processing, the stage and the node before (or without) the trained sample model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CLASSES = ["background", "road", "lane_marking", "vehicle"]
PALETTE_BGR = np.array([[40, 110, 40], [90, 90, 90], [235, 235, 235], [30, 30, 200]], np.uint8)
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def build(path: Path, opset: int = 17) -> Path:
    rgb = PALETTE_BGR[:, ::-1].astype(np.float32) / 255.0
    centres = (rgb - MEAN) / STD  # [4, 3] in the network's input space
    weight = (2.0 * centres).reshape(4, 3, 1, 1).astype(np.float32)
    bias = -(centres**2).sum(axis=1).astype(np.float32)
    nodes = [
        helper.make_node("AveragePool", ["input"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Conv", ["pooled", "w", "b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "segmenter_standin",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, "h", "w"])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def identity_logits_model(path: Path, classes: int, h: int, w: int, opset: int = 17) -> Path:
    """input ``logits_in`` [1, C, h, w] -> ``logits``: feeds chosen logits straight to the transform."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["logits_in"], ["logits"])],
        "identity_logits",
        [helper.make_tensor_value_info("logits_in", TensorProto.FLOAT, [1, classes, h, w])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes, h, w])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def synthetic_frame(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A BGR frame of palette-coloured shapes (road, lane dashes, vehicles) and its class mask."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 2 :, :] = 1
    for x in range(int(w * 0.1), w, max(w // 5, 1)):
        mask[h // 2 + h // 8 :, x : x + max(w // 40, 2)] = 2
    for _ in range(3):
        cx, cy = rng.integers(w // 8, w - w // 8), rng.integers(h // 2, h - h // 8)
        bw, bh = rng.integers(w // 10, w // 5), rng.integers(h // 10, h // 5)
        mask[max(cy - bh, 0) : cy, max(cx - bw // 2, 0) : cx + bw // 2] = 3
    bgr = PALETTE_BGR[mask].astype(np.int16) + rng.normal(0, 6, (h, w, 3)).astype(np.int16)
    return np.clip(bgr, 0, 255).astype(np.uint8), mask


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-pixel bilinear sampling (edge-clamped), as ONNX Resize and cv2.INTER_LINEAR define it."""
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float64)


def bilinear(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    y0, y1, fy = _axis_weights(x.shape[-2], out_h)
    x0, x1, fx = _axis_weights(x.shape[-1], out_w)
    x = x.astype(np.float64)
    rows = x[..., y0, :] * (1 - fy)[:, None] + x[..., y1, :] * fy[:, None]
    return rows[..., x0] * (1 - fx) + rows[..., x1] * fx


def nearest(mask: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    def idx(n_in: int, n_out: int) -> np.ndarray:
        src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        return np.clip(np.ceil(src - 0.5), 0, n_in - 1).astype(np.int64)  # round half down

    return mask[..., idx(mask.shape[-2], out_h)[:, None], idx(mask.shape[-1], out_w)]


def numpy_mask(logits: np.ndarray, mode: str, out_hw: tuple[int, int], divisor: int = 2) -> np.ndarray:
    """The reference each mode must reproduce, from ``[1, C, h, w]`` logits."""
    if mode.startswith("fused"):
        mid = bilinear(logits[0], out_hw[0] // divisor, out_hw[1] // divisor)
        return nearest(mid.argmax(axis=0).astype(np.uint8), *out_hw)
    return bilinear(logits[0], *out_hw).argmax(axis=0).astype(np.uint8)
