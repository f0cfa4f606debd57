"""The same tests on every importable backend, against the ONNX Runtime FP32 reference.

ONNX Runtime and OpenVINO (CPU, the ONNX read directly) always run; TensorRT joins where it is
installed with a GPU (the engine is built through the engine cache into a temp folder). Tolerances
follow Polygraphy's comparator idea: an element passes when ``|a - b| <= atol + rtol * |ref|``; the FP16/INT8 recipes get wider ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from engine_helpers import make_convnet, tensorrt_usable

from trt_perception.inference.engine import Engine, EngineError
from trt_perception.inference.factory import open_engine
from trt_perception.inference.onnxruntime_backend import OnnxRuntimeEngine
from trt_perception.modelops.engine_cache import BuildRecipe, EngineCache, ShapeProfile

TOLERANCES = {"fp32": (1e-4, 1e-4), "fp16": (2e-2, 2e-2), "int8": (0.15, 0.15)}  # (atol, rtol)
PROFILE = ShapeProfile("x", (1, 3, 16, 16), (1, 3, 64, 64), (2, 3, 128, 128))


BACKENDS = [
    "onnxruntime",
    "openvino",
    pytest.param(
        "tensorrt",
        marks=[
            pytest.mark.tensorrt,
            pytest.mark.skipif(not tensorrt_usable(), reason="needs TensorRT + GPU"),
        ],
    ),
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("conformance")
    make_convnet(d / "convnet.onnx")
    return d


def open_backend(backend: str, onnx: Path, precision: str = "fp32") -> Engine:
    if backend in ("onnxruntime", "openvino"):
        return open_engine(onnx, backend=backend)
    from trt_perception.modelops import tensorrt_build as tb

    cache = EngineCache(onnx.parent / "engines")
    build = tb.make_build_fn(onnx.parent / "engines" / "timing.cache")
    result = cache.ensure(
        onnx, BuildRecipe(precision, 256, (PROFILE,)), tb.current_target(), build, tb.validate_plan
    )
    return open_engine(result.path)


def assert_close(out: dict[str, np.ndarray], ref: dict[str, np.ndarray], precision: str) -> None:
    atol, rtol = TOLERANCES[precision]
    assert set(out) == set(ref)
    for name, b in ref.items():
        a = out[name]
        assert a.shape == b.shape, f"{name}: shape {a.shape} vs reference {b.shape}"
        err = np.abs(a.astype(np.float64) - b)
        bad = err > atol + rtol * np.abs(b)
        assert not bad.any(), (
            f"{name}: {int(bad.sum())}/{bad.size} elements outside atol={atol} rtol={rtol}; "
            f"max abs {err.max():.3g}, mean abs {err.mean():.3g}"
        )


def feeds(shape: tuple[int, ...], seed: int = 0) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).random(shape, dtype=np.float32)}


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> OnnxRuntimeEngine:
    return OnnxRuntimeEngine(model_dir / "convnet.onnx", io_binding=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_specs(backend: str, model_dir: Path) -> None:
    engine = open_backend(backend, model_dir / "convnet.onnx")
    assert [s.name for s in engine.inputs] == ["x"]
    assert {s.name for s in engine.outputs} == {"y", "feat"}
    x = engine.input()
    assert x.is_dynamic and x.shape[1] == 3 and x.dtype == np.float32
    assert x.matches((2, 3, 64, 96)) and not x.matches((1, 4, 64, 64)) and not x.matches((3, 64, 64))
    assert engine.batch_limits() == ((1, 2) if backend == "tensorrt" else (1, None))  # profile max batch 2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (2, 3, 32, 48), (1, 3, 128, 128)])
def test_matches_reference(
    backend: str, shape: tuple[int, ...], model_dir: Path, reference: OnnxRuntimeEngine
) -> None:
    engine = open_backend(backend, model_dir / "convnet.onnx")
    f = feeds(shape)
    out = {k: v.copy() for k, v in engine.infer(f).items()}
    assert_close(out, reference.infer(f), "fp32")
    assert engine.last_latency_ms > 0
    assert out["feat"].shape == (shape[0], 16, shape[2] // 2, shape[3] // 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_buffers_reused_per_shape(backend: str, model_dir: Path, reference: OnnxRuntimeEngine) -> None:
    """Same input shape -> the same output buffers (nothing allocated on the hot path)."""
    engine = open_backend(backend, model_dir / "convnet.onnx")
    engine.warmup(2, {"x": (1, 3, 64, 64)})
    first = engine.infer(feeds((1, 3, 64, 64), 1))
    ptr = first["feat"].ctypes.data
    second = engine.infer(feeds((1, 3, 64, 64), 2))
    assert second["feat"].ctypes.data == ptr
    assert_close({k: v.copy() for k, v in second.items()}, reference.infer(feeds((1, 3, 64, 64), 2)), "fp32")
    # a new shape, then back: still correct
    engine.infer(feeds((2, 3, 32, 32), 3))
    assert_close(
        dict(engine.infer(feeds((1, 3, 64, 64), 4))), reference.infer(feeds((1, 3, 64, 64), 4)), "fp32"
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"x": np.zeros((1, 3, 64, 64), np.float64)}, "input 'x' expects dtype float32 but got float64"),
        (
            {"x": np.zeros((1, 4, 64, 64), np.float32)},
            r"input 'x' expects shape x\[\?,3,\?,\?\]:float32 but got \(1, 4, 64, 64\)",
        ),
        ({"x": np.zeros((3, 64, 64), np.float32)}, "input 'x' expects shape"),
        ({}, r"missing \['x'\]"),
        ({"x": np.zeros((1, 3, 8, 8), np.float32), "z": np.zeros(1, np.float32)}, r"unknown \['z'\]"),
    ],
)
def test_bad_feeds_name_tensor_and_values(backend: str, bad: dict, message: str, model_dir: Path) -> None:
    engine = open_backend(backend, model_dir / "convnet.onnx")
    with pytest.raises(EngineError, match=message) as info:
        engine.infer(bad)
    assert "convnet" in str(info.value)


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_precision_recipes_within_tolerance(
    precision: str, model_dir: Path, reference: OnnxRuntimeEngine
) -> None:
    from trt_perception.modelops import precision as recipes

    src = model_dir / "convnet.onnx"
    out = model_dir / f"convnet.{precision}.onnx"
    if precision == "fp16":
        recipes.to_fp16(src, out)
    else:
        cal = [feeds((1, 3, 64, 64), s) for s in range(8)]
        recipes.quantize_int8(src, out, cal, target="cpu")
    engine = open_engine(out)
    assert [s.dtype for s in engine.inputs] == [np.dtype(np.float32)]  # FP32 I/O kept
    f = feeds((1, 3, 64, 64), 11)
    assert_close({k: v.copy() for k, v in engine.infer(f).items()}, reference.infer(f), precision)


@pytest.mark.parametrize("spinning", [False, True])
def test_onnxruntime_spinning_option(spinning: bool, model_dir: Path, reference: OnnxRuntimeEngine) -> None:
    engine = open_engine(model_dir / "convnet.onnx", backend="onnxruntime", allow_spinning=spinning)
    entry = engine._session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")  # type: ignore[attr-defined]
    assert entry == ("1" if spinning else "0")
    f = feeds((1, 3, 64, 64), 3)
    assert_close({k: v.copy() for k, v in engine.infer(f).items()}, reference.infer(f), "fp32")


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"model file not found: .*absent\.onnx"):
        open_engine(tmp_path / "absent.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a protobuf at all")
    with pytest.raises(EngineError, match=r"cannot load ONNX model .*junk\.onnx"):
        open_engine(junk)
    plan = tmp_path / "model.engine"
    plan.write_bytes(b"garbage")
    with pytest.raises(EngineError, match=r"model\.engine"):
        open_engine(plan, backend="onnxruntime")


@pytest.mark.tensorrt
@pytest.mark.skipif(not tensorrt_usable(), reason="needs TensorRT + GPU")
def test_tensorrt_profile_and_corrupt_plan(model_dir: Path, tmp_path: Path) -> None:
    engine = open_backend("tensorrt", model_dir / "convnet.onnx")
    with pytest.raises(
        EngineError,
        match=r"input 'x' shape \(4, 3, 64, 64\) is outside .*min \(1, 3, 16, 16\), max \(2, 3, 128, 128\)",
    ):
        engine.infer(feeds((4, 3, 64, 64)))
    device_out = engine.infer(feeds((1, 3, 64, 64)), outputs_on_device=True)
    assert device_out["feat"].shape == (1, 16, 32, 32) and device_out["feat"].ptr
    engine.synchronize()  # type: ignore[attr-defined]
    corrupt = tmp_path / "corrupt.engine"
    corrupt.write_bytes(b"\x00" * 1024)
    with pytest.raises(EngineError, match=r"cannot deserialize TensorRT engine .*corrupt\.engine"):
        open_engine(corrupt)


@pytest.mark.skipif(tensorrt_usable(), reason="checks the message where TensorRT is absent")
def test_plan_without_tensorrt_is_clear(tmp_path: Path) -> None:
    plan = tmp_path / "m.engine"
    plan.write_bytes(b"x")
    with pytest.raises(EngineError, match=r"cannot open .*m\.engine: TensorRT is not installed"):
        open_engine(plan)
