"""Every ONNX the package ships or writes parses and builds with a real TensorRT-family builder.

TensorRT for RTX (``tensorrt_rtx``, installed from the project lock) has TensorRT's ONNX parser and
builder and builds ahead of time on a CPU-only machine for a target compute capability (sm_86 here).
Built, through the package's own ``build_plan``: the five sample models, their FP16 and INT8-for-TensorRT
copies (``trt-perception quantize --target tensorrt``), every ``fuse-argmax`` mode x ``--argmax-impl``,
the copies ``trt-perception evaluate --precisions`` makes, and the engine builder config's entries with
their dynamic-shape profiles (through the engine cache: key, lock, sidecar, stale/corrupt rebuilds).
A graph the parser rejects fails with the parser's messages. What this does not prove (TensorRT 8.5-10.x
on a Jetson is another parser): ``trt_perception/inference/trt_features.py``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip(
    "tensorrt_rtx", reason="TensorRT-RTX (tensorrt-rtx-cu13, in requirements.lock) not installed"
)

from trt_perception.cli import main
from trt_perception.evaluation.configs import derive_precisions, read_node_params
from trt_perception.evaluation.tasks import EvalConfig
from trt_perception.inference import tensorrt_backend as backend
from trt_perception.inference.engine import EngineError
from trt_perception.modelops import precision as P
from trt_perception.modelops import tensorrt_build as tb
from trt_perception.modelops.argmax_fusion import fuse_argmax
from trt_perception.modelops.engine_cache import (
    BuildRecipe,
    EngineCache,
    ShapeProfile,
    cache_key,
    parse_engine_entry,
)
from trt_perception.modelops.fusion_config import ARGMAX_IMPLS, MODES, FusionConfig

if backend.FLAVOUR != "tensorrt_rtx":
    pytest.skip("a real TensorRT is loaded first; this check is TensorRT-RTX's", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("detector", "pilotnet", "plate_reader_ctc", "plate_reader_heads", "segmenter")
CC = "8.6"  # an RTX 30xx/A-series target; any of trt_features.RTX_COMPUTE_CAPABILITIES would do
CONFIG = read_node_params(ROOT / "config" / "engine_builder.yaml")
DEFAULTS = {k: CONFIG[k] for k in ("precision", "workspace_mb", "dla_core", "optimization_level")}
ENTRIES = [parse_engine_entry(str(e), DEFAULTS) for e in CONFIG["engines"]]
#: Optimization profiles per model, from the engine builder config; the CTC reader's stands for the
#: heads reader (same input), which the config does not list.
PROFILES: dict[str, tuple[ShapeProfile, ...]] = {Path(m).stem: r.profiles for m, r in ENTRIES}
PROFILES["plate_reader_heads"] = PROFILES["plate_reader_ctc"]
CALIBRATION_SHAPE = {"segmenter": "352x640"}  # its input is dynamic
#: Build seconds per graph, printed at the end (``-s``) for the CI-time budget.
TIMES: dict[str, float] = {}


def build(onnx_path: Path, model: str, precision: str = "fp32") -> bytes:
    """``build_plan`` for sm_86 on the CPU; the parser's/builder's messages in the failure."""
    recipe = BuildRecipe(precision, workspace_mb=256, profiles=PROFILES.get(model, ()))
    messages: list[str] = []
    start = time.monotonic()
    try:
        plan = tb.build_plan(onnx_path, recipe, messages.append, compute_capability=CC)
    except EngineError as exc:
        pytest.fail(f"TensorRT-RTX rejects {onnx_path.name}: {exc}", pytrace=False)
    TIMES[onnx_path.name] = time.monotonic() - start
    assert plan and any(m.startswith("Building engine") for m in messages), messages  # progress monitor
    return plan


def calibration(model: str) -> list[dict[str, np.ndarray]]:
    from trt_perception.commands.quantize import make_preprocess

    images = list(P.images_from_folder(ROOT / "data" / "val" / "images", 2))
    return P.calibration_feeds(
        images, make_preprocess(ROOT / "models" / f"{model}.onnx", "resize", CALIBRATION_SHAPE.get(model))
    )


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rtx")


@pytest.mark.parametrize("model", MODELS)
def test_sample_model_builds(model: str) -> None:
    build(ROOT / "models" / f"{model}.onnx", model)


@pytest.mark.parametrize("model", MODELS)
def test_fp16_copy_builds(model: str, work: Path) -> None:
    out = work / f"{model}.fp16.onnx"
    assert main(["quantize", str(ROOT / "models" / f"{model}.onnx"), "--fp16", str(out)]) == 0
    build(out, model, "fp16")


@pytest.mark.parametrize("model", MODELS)
def test_int8_copy_for_tensorrt_builds(model: str, work: Path) -> None:
    """Failed before QuantizeBias=False: ``..bias_DequantizeLinear: INVALID_NODE`` (int32 bias DQ)."""
    out = work / f"{model}.int8.onnx"
    args = ["quantize", str(ROOT / "models" / f"{model}.onnx"), "--int8", str(out), "--target", "tensorrt"]
    args += ["--calib-images", str(ROOT / "data" / "val" / "images"), "--count", "2"]
    if model in CALIBRATION_SHAPE:
        args += ["--shape", CALIBRATION_SHAPE[model]]
    assert main(args) == 0
    build(out, model, "int8")


@pytest.mark.parametrize("impl", ARGMAX_IMPLS)
@pytest.mark.parametrize("mode", MODES)
def test_fused_argmax_builds(mode: str, impl: str, work: Path) -> None:
    """Failed before the float32 class index: ``Cast ... UNSUPPORTED_NODE: TensorRT does not support UINT8
    types for intermediate tensors`` in every mode and implementation."""
    out = work / f"segmenter.{mode}.{impl}.onnx"
    args = [
        "fuse-argmax",
        str(ROOT / "models" / "segmenter.onnx"),
        str(out),
        "--mode",
        mode,
        "--argmax-impl",
        impl,
    ]
    assert main(args) == 0
    build(out, "segmenter")


def test_segmenter_default_fusion_builds(work: Path) -> None:
    """The Segmenter's defaults (delta chain, rows-only 1x4 divisor, graph ending at the argmax) as a
    TensorRT user fuses them for an engine; ``target="cpu"`` (its ONNX Runtime graph) is the one TensorRT
    rejects, by design, with the UINT8 message."""
    from trt_perception.stages.segmenter import SegmenterConfig

    stage = SegmenterConfig("")
    base = onnx.load(str(ROOT / "models" / "segmenter.onnx"))
    for target in ("tensorrt", "cpu"):
        cfg = FusionConfig(
            stage.fusion_mode,
            divisor=stage.fusion_divisor,
            argmax_impl=stage.fusion_argmax_impl,
            final_resize=False,
            target=target,
        )
        out = work / f"segmenter.stage.{target}.onnx"
        onnx.save(fuse_argmax(base, cfg), str(out))
        if target == "tensorrt":
            build(out, "segmenter")
        else:
            with pytest.raises(EngineError, match="does not support UINT8 types for intermediate tensors"):
                tb.build_plan(out, BuildRecipe("fp32", profiles=PROFILES["segmenter"]), print, CC)


@pytest.mark.parametrize("model", MODELS)
def test_evaluate_copies_build(model: str, work: Path) -> None:
    """The FP16 / INT8 copies ``trt-perception evaluate --precisions fp16,int8`` writes (its default
    ``--int8-target tensorrt``)."""
    base = EvalConfig(f"{model} fp32", ROOT / "models" / f"{model}.onnx", "onnxruntime", "fp32", {})
    copies = derive_precisions(base, ["fp16", "int8"], work / "eval" / model, lambda: calibration(model))
    assert [c.precision for c in copies] == ["fp16", "int8"]
    for c in copies:
        build(c.model, model, c.precision)


def test_engine_builder_config_through_the_cache(tmp_path: Path) -> None:
    """The config's entries (dynamic-shape profiles, FP16 -> strongly typed FP16 copies) through the
    package's engine cache with the real builder: built once, reused, corrupt and stale plans rebuilt."""
    cache = tmp_path / "engines"
    results = []
    for model, recipe in ENTRIES:
        messages: list[str] = []
        result = tb.ensure_engine(ROOT / model, recipe, cache, messages.append, compute_capability=CC)
        assert result.built and result.reason == "missing", result
        assert any(m.startswith("Building engine") for m in messages), messages
        meta = result.metadata
        assert meta["target"]["flavour"] == "tensorrt_rtx" and meta["target"]["compute_capability"] == CC
        assert meta["recipe"]["profiles"] == [
            {"name": p.name, "min": list(p.min), "opt": list(p.opt), "max": list(p.max)}
            for p in recipe.profiles
        ]
        TIMES[f"cache:{result.path.name}"] = result.seconds
        results.append(result)
    model, recipe = ENTRIES[0]
    again = tb.ensure_engine(ROOT / model, recipe, cache, compute_capability=CC)
    assert not again.built and again.key == results[0].key
    results[0].path.write_bytes(results[0].path.read_bytes()[:1000])  # a truncated plan
    fixed = tb.ensure_engine(ROOT / model, recipe, cache, compute_capability=CC)
    assert fixed.built and fixed.reason.startswith("corrupt")
    other = tb.ensure_engine(ROOT / model, recipe, cache, compute_capability="8.9")
    assert other.built and "compute_capability '8.6' -> '8.9'" in other.reason
    assert other.key != fixed.key
    with pytest.raises(EngineError, match=r"cannot target compute capability '9\.0'"):
        tb.ensure_engine(ROOT / model, recipe, cache, compute_capability="9.0")  # Hopper: TensorRT only
    with pytest.raises(EngineError, match="no DLA"):
        tb.ensure_engine(ROOT / model, BuildRecipe("fp16", dla_core=0), cache, compute_capability=CC)


def _build_in_process(cache: str, model: str, recipe: BuildRecipe) -> None:
    result = tb.ensure_engine(model, recipe, cache, compute_capability=CC)
    raise SystemExit(0 if result.built else 3)  # 3: found the other process's engine


def test_two_processes_build_one_engine(tmp_path: Path) -> None:
    """The per-engine lock with the real builder: two processes, one build, one intact plan."""
    model, recipe = ENTRIES[-1]
    cache = tmp_path / "engines"
    procs = [
        mp.get_context("fork").Process(target=_build_in_process, args=(str(cache), str(ROOT / model), recipe))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert sorted(p.exitcode for p in procs) == [0, 3]  # one built, the other waited and reused it
    engine = cache / f"{Path(model).stem}.{recipe.precision}.engine"
    ok, reason, _ = EngineCache(cache).check(
        ROOT / model, recipe, tb.current_target(-1, -1, CC), None, cache / f"{Path(model).stem}.fp16.onnx"
    )
    assert ok, reason
    assert [p.name for p in cache.glob("*.tmp")] == [] and engine.is_file()


def test_runtime_refuses_here_with_a_clear_error(tmp_path: Path) -> None:
    """No RTX GPU on this machine: the validity check says so before anything is deserialized."""
    import tensorrt_rtx

    model = ENTRIES[0][0]
    plan = tb.build_plan(ROOT / model, BuildRecipe("fp32"), lambda _m: None, compute_capability=CC)
    with pytest.raises(
        EngineError, match=r"cannot run with TensorRT-RTX 1\.\d+.* on this GPU \(no usable GPU"
    ):
        backend.check_validity(tensorrt_rtx.Runtime(backend.LOGGER), plan, "detector.engine")
    assert any("compute capability" in r and "Hopper" in r for r in backend.invalidity_reasons(2))
    assert len(backend.invalidity_reasons(1 | 32)) == 2


def test_max_batch_profile_covers_batch_1_to_n(tmp_path: Path) -> None:
    """Issue 19: an input whose only dynamic dimension is the batch, with no profile given, gets batch
    1..max_batch (opt = max: a multi-camera pipeline's batches are full in steady state); a model
    whose batch is fixed refuses max_batch > 1; the cache key keeps max_batch 1 engines and tells 4."""
    from types import SimpleNamespace

    from detection_models import constant_model

    class Profile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

        def set_shape(self, name: str, *dims: object) -> None:
            self.shapes[name] = tuple(backend.shape_of(d) for d in dims)  # type: ignore[arg-type]

    def profile_of(recipe: BuildRecipe, shape: list[int]) -> Profile:
        profile, added = Profile(), []
        net = SimpleNamespace(
            num_inputs=1, get_input=lambda i: SimpleNamespace(name="images", shape=tb.trt.Dims(shape))
        )
        builder = SimpleNamespace(create_optimization_profile=lambda: profile)
        tb._add_profile(
            builder, net, SimpleNamespace(add_optimization_profile=added.append), recipe, Path("d.onnx")
        )
        assert added == [profile]
        return profile

    rest = (3, 288, 512)
    assert profile_of(BuildRecipe("fp16", max_batch=4), [-1, *rest]).shapes["images"] == (
        (1, *rest),
        (4, *rest),
        (4, *rest),
    )
    assert profile_of(BuildRecipe("fp16"), [-1, *rest]).shapes["images"] == ((1, *rest),) * 3
    given = BuildRecipe(
        "fp16", profiles=(ShapeProfile.parse("images", "1x3x288x512:2x3x288x512:8x3x288x512"),)
    )
    assert profile_of(replace(given, max_batch=4), [-1, *rest]).shapes["images"][2] == (
        8,
        *rest,
    )  # given wins
    _, recipe = parse_engine_entry("models/detector.onnx;max_batch=4", DEFAULTS)
    assert recipe.max_batch == 4 and "max_batch" not in BuildRecipe("fp16").as_dict()
    target = tb.current_target(-1, -1, CC)
    assert cache_key("x", recipe, target) != cache_key("x", replace(recipe, max_batch=1), target)
    assert tb.build_plan(ROOT / "models" / "detector.onnx", recipe, lambda _m: None, compute_capability=CC)
    cli = ["build", str(ROOT / "models/detector.onnx"), "--max-batch", "4", "--precision", "fp32"]
    assert main([*cli, "--compute-capability", CC, "--cache-dir", str(tmp_path / "engines")]) == 0
    sidecar = json.loads((tmp_path / "engines" / "detector.fp32.engine.json").read_text())
    assert sidecar["recipe"]["max_batch"] == 4
    fixed = constant_model(
        tmp_path / "fixed.onnx", {"y": np.zeros((1, 2), np.float32)}, input_shape=(1, 3, 64, 64)
    )
    with pytest.raises(
        EngineError, match=r"max_batch 4 but input 'images' has the fixed shape \(1, 3, 64, 64\)"
    ):
        tb.build_plan(fixed, recipe, lambda _m: None, compute_capability=CC)


def test_report_build_times(capsys: pytest.CaptureFixture[str]) -> None:
    """Last in the file, so last to run: the per-graph build times (shown even without ``-s``)."""
    with capsys.disabled():
        total = sum(TIMES.values())
        print(f"\nTensorRT-RTX builds: {len(TIMES)} graphs, {total:.1f} s of build_plan")
        for name, s in sorted(TIMES.items(), key=lambda kv: -kv[1]):
            print(f"  {s:5.2f} s  {name}")
    assert TIMES
