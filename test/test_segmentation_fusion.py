"""The argmax graph transform against numpy: random logits through every mode on ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import segmentation_standin as standin
from segmentation_standin import numpy_mask

from trt_perception.modelops.argmax_fusion import fuse_argmax, fuse_argmax_file, fusion_info
from trt_perception.modelops.fusion_config import MASK_OUTPUT, MODES, FusionConfig, parse_divisor, parse_size


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run([MASK_OUTPUT], feeds)[0]


@pytest.mark.parametrize("impl", ["op", "compare", "delta"])
@pytest.mark.parametrize("mode", MODES)
def test_modes_match_numpy_on_random_logits(tmp_path: Path, mode: str, impl: str) -> None:
    rng = np.random.default_rng(7)
    c, h, w, out_hw = 19, 24, 40, (96, 160)
    logits = rng.normal(size=(1, c, h, w)).astype(np.float32)
    model = onnx.load(str(standin.identity_logits_model(tmp_path / "id.onnx", c, h, w)))
    fused = fuse_argmax(model, FusionConfig(mode=mode, output_size=out_hw, argmax_impl=impl))
    got = _run(fused, {"logits_in": logits})
    want = numpy_mask(logits, mode, out_hw)
    assert got.dtype == np.uint8
    assert got.shape == (1, *out_hw)
    # float32 in ORT vs float64 here: only near-ties may flip.
    assert (got[0] == want).mean() > 0.999, mode


def test_argmax_at_logits_resolution_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(1, 6, 17, 23)).astype(np.float32)
    logits[0, 4, :3] = logits[0, 2, :3] = 50.0  # ties: numpy and both ops take the first index
    model = onnx.load(str(standin.identity_logits_model(tmp_path / "id.onnx", 6, 17, 23)))
    for mode, impl in (("argmax", "op"), ("argmax", "compare"), ("argmax", "delta"), ("reducemax", "op")):
        cfg = FusionConfig(mode=mode, output_size="logits", argmax_impl=impl)
        got = _run(fuse_argmax(model, cfg), {"logits_in": logits})
        np.testing.assert_array_equal(got[0], logits[0].argmax(axis=0))


@pytest.mark.parametrize("mode", MODES)
def test_dynamic_input_size_gives_mask_at_input_resolution(tmp_path: Path, mode: str) -> None:
    src = standin.build(tmp_path / "seg.onnx")
    dst = fuse_argmax_file(src, tmp_path / f"seg_{mode}.onnx", FusionConfig(mode=mode))
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == [MASK_OUTPUT]
    for h, w in ((64, 96), (128, 64)):
        bgr, gt = standin.synthetic_frame(h, w, seed=3)
        x = ((bgr[:, :, ::-1] / 255.0 - standin.MEAN) / standin.STD).transpose(2, 0, 1)[None]
        mask = sess.run(None, {"input": x.astype(np.float32)})[0]
        assert mask.shape == (1, h, w)
        assert (mask[0] == gt).mean() > 0.9
    assert fusion_info(onnx.load(str(dst)))["mode"] == mode


def test_old_opset_is_upgraded_and_checked(tmp_path: Path) -> None:
    src = standin.build(tmp_path / "seg11.onnx", opset=11)
    fused = fuse_argmax(onnx.load(str(src)), FusionConfig())
    assert max(i.version for i in fused.opset_import if i.domain in ("", "ai.onnx")) >= 13


def test_keep_logits_and_errors(tmp_path: Path) -> None:
    model = onnx.load(str(standin.build(tmp_path / "seg.onnx")))
    both = fuse_argmax(model, FusionConfig(keep_logits=True))
    assert [o.name for o in both.graph.output] == ["logits", MASK_OUTPUT]
    with pytest.raises(ValueError, match="no output 'scores'"):
        fuse_argmax(model, FusionConfig(logits="scores"))
    with pytest.raises(ValueError, match="unknown argmax mode"):
        FusionConfig(mode="softmax")
    assert parse_size("768x1344") == (768, 1344)
    assert parse_size("input") == "input"
    with pytest.raises(ValueError, match="HxW"):
        parse_size("big")


@pytest.mark.parametrize("impl", ["op", "compare", "delta"])
@pytest.mark.parametrize("divisor", [(1, 4), (2, 1)])
def test_per_axis_divisor(tmp_path: Path, impl: str, divisor: tuple[int, int]) -> None:
    rng = np.random.default_rng(3)
    c, h, w, out_hw = 4, 24, 40, (96, 160)
    logits = rng.normal(size=(1, c, h, w)).astype(np.float32)
    model = onnx.load(str(standin.identity_logits_model(tmp_path / "id.onnx", c, h, w)))
    cfg = FusionConfig(mode="fused-argmax", output_size=out_hw, divisor=divisor, argmax_impl=impl)
    got = _run(fuse_argmax(model, cfg), {"logits_in": logits})[0]
    work = standin.bilinear(logits[0], out_hw[0] // divisor[0], out_hw[1] // divisor[1])
    want = standin.nearest(work.argmax(axis=0).astype(np.uint8), *out_hw)
    assert got.shape == out_hw and (got == want).mean() > 0.999
    head = fuse_argmax(
        model, FusionConfig(output_size=out_hw, divisor=divisor, argmax_impl=impl, final_resize=False)
    )
    assert _run(head, {"logits_in": logits}).shape == (1, out_hw[0] // divisor[0], out_hw[1] // divisor[1])
    assert fusion_info(head)["mask_divisor"] == list(divisor)
    assert (
        parse_divisor("1x4") == (1, 4)
        and parse_divisor("2") == 2
        and FusionConfig(divisor=(2, 2)).divisor == 2
    )
    with pytest.raises(ValueError, match="divisor"):
        FusionConfig(divisor=(0, 2))


def _uint8_tensors(model: onnx.ModelProto) -> set[str]:
    """Names of the uint8 tensors the graph's nodes write (Cast to uint8, ops on uint8 inputs)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {
        v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.output]
    }
    return {o for n in inferred.graph.node for o in n.output if types.get(o) == onnx.TensorProto.UINT8}


@pytest.mark.parametrize("final_resize", [True, False])
@pytest.mark.parametrize("impl", ["op", "compare", "delta"])
@pytest.mark.parametrize("mode", MODES)
def test_tensorrt_target_has_uint8_only_at_the_output(
    tmp_path: Path, mode: str, impl: str, final_resize: bool
) -> None:
    """TensorRT (8.6+ and RTX) rejects a UINT8 tensor anywhere but at a network output, and resizes only
    float: the default target carries the index as float32 and casts once, into ``mask``. Failed before
    (every graph had a uint8 Cast before the Squeeze/Resize). Same masks as the ONNX Runtime (cpu) graph."""
    rng = np.random.default_rng(5)
    c, h, w, out_hw = 5, 24, 40, (96, 160)
    logits = rng.normal(size=(1, c, h, w)).astype(np.float32)
    model = onnx.load(str(standin.identity_logits_model(tmp_path / "id.onnx", c, h, w)))
    common = {"mode": mode, "output_size": out_hw, "argmax_impl": impl, "final_resize": final_resize}
    trt_graph = fuse_argmax(model, FusionConfig(**common))
    assert _uint8_tensors(trt_graph) == {MASK_OUTPUT}
    resizes = [n for n in trt_graph.graph.node if n.op_type == "Resize"]
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in onnx.shape_inference.infer_shapes(trt_graph).graph.value_info
    }
    assert all(types.get(n.input[0], onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT for n in resizes)
    cpu_graph = fuse_argmax(model, FusionConfig(**common, target="cpu"))
    assert len(_uint8_tensors(cpu_graph)) > 1  # the faster ONNX Runtime graph keeps its uint8 chain
    np.testing.assert_array_equal(
        _run(trt_graph, {"logits_in": logits}), _run(cpu_graph, {"logits_in": logits})
    )
    assert fusion_info(trt_graph)["target"] == "tensorrt"
    with pytest.raises(ValueError, match="target must be one of tensorrt, cpu"):
        FusionConfig(target="gpu")
