"""Precision recipes verified with ONNX Runtime: FP16 copy, INT8 Q/DQ calibration (folder and bag),
accuracy-aware INT8 with its step report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from engine_helpers import make_convnet

from trt_perception.inference.engine import EngineError
from trt_perception.inference.factory import open_engine
from trt_perception.modelops import precision as P


@pytest.fixture(scope="module")
def convnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_convnet(tmp_path_factory.mktemp("precision") / "convnet.onnx")


def cal_feeds(n: int = 8, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.random((1, 3, 48, 48), dtype=np.float32)} for _ in range(n)]


def op_types(path: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_fp16_keeps_io_types(convnet: Path, tmp_path: Path) -> None:
    out = P.to_fp16(convnet, tmp_path / "fp16.onnx")
    model = onnx.load(str(out))
    weights = {t.name: t.data_type for t in model.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in weights.values()
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [onnx.TensorProto.FLOAT]
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in model.graph.output)
    assert out.stat().st_size < convnet.stat().st_size * 0.7
    f = cal_feeds(1)[0]
    ref, half = open_engine(convnet).infer(f)["y"].copy(), open_engine(out).infer(f)["y"]
    np.testing.assert_allclose(half, ref, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("target", ["tensorrt", "cpu"])
def test_int8_qdq_per_channel(convnet: Path, tmp_path: Path, target: str) -> None:
    out = P.quantize_int8(
        convnet, tmp_path / f"int8_{target}.onnx", cal_feeds(), target=target, float_tail=False
    )
    ops = op_types(out)
    assert ops.count("QuantizeLinear") >= 3 and ops.count("DequantizeLinear") >= 6
    model = onnx.load(str(out))
    inits = {t.name: t for t in model.graph.initializer}
    # per-channel: conv weight scales are vectors, one per output channel
    scales = [
        inits[n.input[1]]
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] == "w2_quantized"
    ]
    assert scales and list(scales[0].dims) == [16]
    zero_points = [
        inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2
    ]
    expected = onnx.TensorProto.INT8 if target == "tensorrt" else onnx.TensorProto.UINT8
    assert zero_points and all(z.data_type == expected for z in zero_points)
    if target == "tensorrt":  # symmetric activations: zero point 0, what TensorRT accepts
        assert all(not onnx.numpy_helper.to_array(z).any() for z in zero_points)
    f = cal_feeds(1, seed=5)[0]
    ref, q = open_engine(convnet).infer(f)["y"].copy(), open_engine(out).infer(f)["y"]
    np.testing.assert_allclose(q, ref, atol=0.15, rtol=0.15)


def weight_is_quantized(path: Path, node_name: str) -> bool:
    model = onnx.load(str(path))
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    node = next(n for n in model.graph.node if n.name == node_name)
    return producers.get(node.input[1]) == "DequantizeLinear"


def test_nodes_to_exclude_stay_float(convnet: Path, tmp_path: Path) -> None:
    out = P.quantize_int8(convnet, tmp_path / "ex.onnx", cal_feeds(), nodes_to_exclude=["head"])
    assert not weight_is_quantized(out, "head") and weight_is_quantized(out, "conv2")
    assert not weight_is_quantized(out, "conv1")  # the image stem stays float by default
    assert not weight_is_quantized(out, "conv3")  # so do the nodes writing graph outputs ('feat')
    everything = P.quantize_int8(
        convnet, tmp_path / "all.onnx", cal_feeds(), float_stem=False, float_tail=False
    )
    assert weight_is_quantized(everything, "conv1") and weight_is_quantized(everything, "head")


def test_revert_node_removes_output_qdq(convnet: Path, tmp_path: Path) -> None:
    """Reverting a node also drops the Q/DQ on its output (what nodes_to_exclude does)."""
    q = onnx.load(
        str(P.quantize_int8(convnet, tmp_path / "q.onnx", cal_feeds(), float_tail=False, float_stem=False))
    )
    floats = {t.name: t for t in onnx.load(str(convnet)).graph.initializer}
    reverted = P._revert_node(q, "conv2", floats)
    producers = {o: n for n in reverted.graph.node for o in n.output}
    conv2 = next(n for n in reverted.graph.node if n.name == "conv2")
    assert producers[conv2.input[0]].op_type != "DequantizeLinear" and conv2.input[1] == "w2__float"
    relu2 = next(n for n in reverted.graph.node if n.name == "relu2")
    assert producers[relu2.input[0]].op_type in ("Identity", "Conv")
    assert P.output_nodes(onnx.load(str(convnet))) == ["conv3", "head"]
    assert P.tail_nodes(onnx.load(str(convnet))) == ["conv3", "head"]  # nothing after the last Gemm


def test_stem_nodes(convnet: Path) -> None:
    assert P.stem_nodes(onnx.load(str(convnet))) == ["conv1", "relu1"]
    model = onnx.load(str(convnet))
    model.graph.node[0].op_type = "Relu"  # no conv on the image first: no stem
    del model.graph.node[0].input[1:]
    assert P.stem_nodes(model) == []


def test_accuracy_aware_meets_limit_and_reports(convnet: Path, tmp_path: Path) -> None:
    feeds = cal_feeds(8)
    ref = open_engine(convnet)
    refs = [ref.infer(f)["y"].copy() for f in feeds]

    def fidelity(path: Path) -> float:  # 1 - normalised MSE of the head output vs FP32
        e = open_engine(path)
        err = np.mean([np.mean((e.infer(f)["y"] - r) ** 2) / np.mean(r**2) for f, r in zip(feeds, refs)])
        return float(1.0 - err)

    quantized = fidelity(P.quantize_int8(convnet, tmp_path / "plain.onnx", feeds, float_tail=False))
    limit = (1.0 - quantized) / 4  # demand 4x less loss than plain INT8
    steps: list[P.AccuracyStep] = []
    report = P.quantize_int8_accuracy_aware(
        convnet,
        tmp_path / "aa.onnx",
        feeds,
        fidelity,
        max_drop=limit,
        relative=False,
        on_step=steps.append,
        float_tail=False,
    )
    assert report.reference_metric == pytest.approx(1.0)
    assert report.steps == steps and steps[0].excluded == []
    assert report.met and report.steps[-1].drop <= limit and len(report.steps) >= 2
    assert {n for n, _ in report.ranking} == {"conv2", "conv3", "head"}  # conv1: float stem
    assert report.steps[-1].excluded == [n for n, _ in report.ranking][: len(report.steps[-1].excluded)]
    assert fidelity(tmp_path / "aa.onnx") == pytest.approx(report.steps[-1].metric)
    assert "step  excluded" in report.table() and '"steps"' in report.to_json()


def test_calibration_from_folder(sample_data, convnet: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    images = list(P.images_from_folder(sample_data.images_dir, limit=4))
    assert len(images) == 4 and images[0].ndim == 3 and images[0].shape[2] == 3
    feeds = P.calibration_feeds(images, P.resize_preprocess("x", 64, 48))
    assert feeds[0]["x"].shape == (1, 3, 48, 64) and feeds[0]["x"].max() <= 1.0
    assert P.quantize_int8(convnet, tmp_path / "folder.onnx", feeds).is_file()


def test_calibration_from_bag(sample_data) -> None:  # type: ignore[no-untyped-def]
    images = list(P.images_from_bag(sample_data.bag, "/camera/image_raw", limit=3))
    assert len(images) == 3 and images[0].dtype == np.uint8 and images[0].shape[2] == 3
    with pytest.raises(EngineError, match="no topic /nope"):
        list(P.images_from_bag(sample_data.bag, "/nope"))


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"ONNX model not found: .*missing\.onnx"):
        P.to_fp16(tmp_path / "missing.onnx", tmp_path / "o.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x01garbage")
    with pytest.raises(EngineError, match=r"cannot read ONNX model .*bad\.onnx"):
        P.quantize_int8(bad, tmp_path / "o.onnx", cal_feeds(1))
    with pytest.raises(EngineError, match="calibration folder not found"):
        list(P.images_from_folder(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(EngineError, match="no images"):
        list(P.images_from_folder(tmp_path / "empty"))
    with pytest.raises(EngineError, match="no calibration data"):
        P.calibration_feeds([], P.resize_preprocess("x", 8, 8))


@pytest.mark.parametrize("model", ["detector", "pilotnet", "plate_reader_heads"])
def test_int8_for_tensorrt_follows_its_qdq_rules(model: str, tmp_path: Path) -> None:
    """What TensorRT's Q/DQ importers accept and its placement rules (trt_features: ONNX limits):
    DequantizeLinear only on INT8 (biases stay float: ORT's int32 bias DQ was ``INVALID_NODE``, and failed
    this test before), zero points 0 (symmetric), per-channel weight scales on the output-channel axis, Q/DQ
    on the inputs of Conv/ConvTranspose/MatMul/Gemm and not on their outputs. The CPU target keeps ORT's
    quantized int32 biases (its kernels fold them)."""
    from onnx import numpy_helper

    from trt_perception.commands.quantize import make_preprocess

    root = Path(__file__).resolve().parents[1]
    src = root / "models" / f"{model}.onnx"
    images = list(P.images_from_folder(root / "data" / "val" / "images", 2))
    feeds = P.calibration_feeds(images, make_preprocess(src, "resize", None))
    out = P.quantize_int8(src, tmp_path / "trt.onnx", feeds, target="tensorrt")
    graph = onnx.load(str(out)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    dqs = [n for n in graph.node if n.op_type == "DequantizeLinear"]
    assert dqs and all(inits[n.input[0]].dtype == np.int8 for n in dqs if n.input[0] in inits)
    for n in graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2:
            zp = inits[n.input[2]]
            assert zp.dtype == np.int8 and not zp.any(), n.name
    weighted = {"Conv", "ConvTranspose", "MatMul", "Gemm"}
    for dq in dqs:  # every Q/DQ pair is there for a weighted layer's input (others may share it)
        readers = {n.op_type for n in graph.node if dq.output[0] in n.input}
        assert readers & weighted, (dq.name, readers)
        if dq.input[0] in inits:
            assert readers <= weighted, (dq.name, readers)  # weights: nothing else reads them
    quantized = 0
    for node in graph.node:
        weight = producers.get(node.input[1]) if node.op_type in ("Conv", "Gemm") else None
        if weight is None:
            continue  # not a weighted layer, or one kept in float (stem/tail)
        quantized += 1
        axis = next((a.i for a in weight.attribute if a.name == "axis"), 1)
        assert axis == 0 and inits[weight.input[1]].shape == (inits[weight.input[0]].shape[0],), node.name
        if len(node.input) > 2:
            assert node.input[2] in inits and inits[node.input[2]].dtype == np.float32, (
                node.name
            )  # float bias
        outputs_q = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] in node.output]
        assert not outputs_q, f"{node.name}: its output is quantized (TensorRT wants Q/DQ on inputs)"
    assert quantized >= 3
    cpu = P.quantize_int8(src, tmp_path / "cpu.onnx", feeds, target="cpu")
    cpu_inits = {t.name: t.data_type for t in onnx.load(str(cpu)).graph.initializer}
    assert onnx.TensorProto.INT32 in cpu_inits.values()
