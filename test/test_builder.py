"""Engine cache: key, lock, atomic writes, stale/corrupt rebuilds, with a plain build callable.

TensorRT-specific parts (a real build and deserialize) are at the end under ``tensorrt``.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import make_convnet, tensorrt_usable

from trt_perception.inference.engine import EngineError
from trt_perception.inference.trt_features import features
from trt_perception.io.files import atomic_write
from trt_perception.modelops.engine_cache import (
    BuildRecipe,
    EngineCache,
    ShapeProfile,
    Target,
    cache_key,
    load_recipe,
    onnx_for_build,
    parse_engine_entry,
)
from trt_perception.modelops.precision import quantize_int8

TARGET = Target("10.13.0.35", "Orin", "8.7")


class FakeBuild:
    """Counts builds; the 'plan' embeds the ONNX bytes and the precision."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls = 0
        self.delay_s = delay_s

    def __call__(self, onnx: Path, recipe: BuildRecipe, progress) -> bytes:  # type: ignore[no-untyped-def]
        self.calls += 1
        progress("fake build step")
        time.sleep(self.delay_s)
        return b"PLAN:" + recipe.precision.encode() + onnx.read_bytes()


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    p = tmp_path / "net.onnx"
    p.write_bytes(b"fake onnx v1")
    return p


def test_builds_once_then_reuses(tmp_path: Path, onnx_file: Path) -> None:
    cache, build = EngineCache(tmp_path / "cache"), FakeBuild()
    messages: list[str] = []
    first = cache.ensure(onnx_file, BuildRecipe("fp16"), TARGET, build, progress=messages.append)
    assert first.built and first.reason == "missing" and build.calls == 1
    assert first.path.name == "net.fp16.engine" and first.path.read_bytes().startswith(b"PLAN:fp16")
    meta = json.loads(EngineCache.sidecar(first.path).read_text())
    assert meta["key"] == first.key and meta["target"]["gpu_name"] == "Orin"
    assert any("building" in m for m in messages)
    second = cache.ensure(onnx_file, BuildRecipe("fp16"), TARGET, build)
    assert not second.built and build.calls == 1 and second.key == first.key
    # no temp files left behind
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "net.fp16.engine",
        "net.fp16.engine.json",
        "net.fp16.engine.lock",
    ]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("onnx", "ONNX changed"),
        ("trt", "tensorrt_version '10.13.0.35' -> '10.14.1'"),
        ("gpu", "gpu_name 'Orin' -> 'Xavier'"),
        ("recipe", "recipe changed"),
    ],
)
def test_key_change_rebuilds_with_warning(
    tmp_path: Path, onnx_file: Path, change: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache, build = EngineCache(tmp_path), FakeBuild()
    cache.ensure(onnx_file, BuildRecipe("fp16"), TARGET, build)
    recipe, target = BuildRecipe("fp16"), TARGET
    if change == "onnx":
        onnx_file.write_bytes(b"fake onnx v2")
    elif change == "trt":
        target = Target("10.14.1", "Orin", "8.7")
    elif change == "gpu":
        target = Target("10.13.0.35", "Xavier", "8.7")
    else:
        recipe = BuildRecipe("fp16", workspace_mb=2048)
    with caplog.at_level(logging.WARNING):
        result = cache.ensure(onnx_file, recipe, target, build)
    assert result.built and build.calls == 2
    assert reason in result.reason and "stale" in result.reason
    assert any("rebuilding net.fp16.engine" in r.message for r in caplog.records)


def test_corrupt_engine_rebuilt(tmp_path: Path, onnx_file: Path) -> None:
    cache, build = EngineCache(tmp_path), FakeBuild()
    path = cache.ensure(onnx_file, BuildRecipe("int8"), TARGET, build).path
    path.write_bytes(b"truncated")
    again = cache.ensure(onnx_file, BuildRecipe("int8"), TARGET, build)
    assert again.built and "corrupt" in again.reason and build.calls == 2


def test_failed_validation_rebuilt(tmp_path: Path, onnx_file: Path) -> None:
    cache, build = EngineCache(tmp_path), FakeBuild()
    cache.ensure(onnx_file, BuildRecipe(), TARGET, build)

    def refuse(_path: Path) -> None:
        raise RuntimeError("deserialize failed: version tag mismatch")

    again = cache.ensure(onnx_file, BuildRecipe(), TARGET, build, validate=refuse)
    assert again.built and "version tag mismatch" in again.reason


def test_missing_sidecar_is_stale(tmp_path: Path, onnx_file: Path) -> None:
    cache, build = EngineCache(tmp_path), FakeBuild()
    path = cache.ensure(onnx_file, BuildRecipe(), TARGET, build).path
    EngineCache.sidecar(path).unlink()
    assert cache.ensure(onnx_file, BuildRecipe(), TARGET, build).built


def test_key_covers_every_input() -> None:
    base = cache_key("abc", BuildRecipe(), TARGET)
    assert base == cache_key("abc", BuildRecipe(), TARGET)
    assert base != cache_key("abd", BuildRecipe(), TARGET)
    assert base != cache_key("abc", BuildRecipe(dla_core=0), TARGET)
    assert base != cache_key("abc", BuildRecipe(), Target("10.13.0.35", "Orin", "8.7", dla_core=1))
    assert base != cache_key("abc", BuildRecipe(), Target("10.13.0.35", "Orin", "7.2"))


def test_missing_onnx_and_empty_plan(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    with pytest.raises(EngineError, match=r"ONNX model not found: .*nope\.onnx"):
        cache.ensure(tmp_path / "nope.onnx", BuildRecipe(), TARGET, FakeBuild())
    onnx = tmp_path / "a.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(EngineError, match="empty plan"):
        cache.ensure(onnx, BuildRecipe(), TARGET, lambda *_: b"")
    assert not (tmp_path / "a.fp16.engine").exists()


def test_failed_build_leaves_old_engine(tmp_path: Path, onnx_file: Path) -> None:
    cache = EngineCache(tmp_path)
    path = cache.ensure(onnx_file, BuildRecipe(), TARGET, FakeBuild()).path
    before = path.read_bytes()
    onnx_file.write_bytes(b"changed")

    def boom(*_: object) -> bytes:
        raise EngineError("parser failed")

    with pytest.raises(EngineError, match="parser failed"):
        cache.ensure(onnx_file, BuildRecipe(), TARGET, boom)
    assert path.read_bytes() == before


def _worker(cache_dir: str, onnx: str, counter: str) -> None:
    def build(onnx_path: Path, recipe: BuildRecipe, progress) -> bytes:  # type: ignore[no-untyped-def]
        with open(counter, "a") as f:
            f.write("x")
        time.sleep(0.5)
        return b"PLAN" + onnx_path.read_bytes()

    EngineCache(cache_dir).ensure(onnx, BuildRecipe(), TARGET, build)


def test_two_processes_build_once(tmp_path: Path, onnx_file: Path) -> None:
    counter = tmp_path / "builds.txt"
    ctx = mp.get_context("fork")
    procs = [
        ctx.Process(target=_worker, args=(str(tmp_path / "c"), str(onnx_file), str(counter)))
        for _ in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert counter.read_text() == "x"
    assert (tmp_path / "c" / "net.fp16.engine").read_bytes().startswith(b"PLAN")


def test_atomic_write_replaces(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two" and list(tmp_path.iterdir()) == [target]


def test_recipe_and_profiles_from_config() -> None:
    r = load_recipe(
        {
            "precision": "int8",
            "workspace_mb": 512,
            "dla_core": 0,
            "profiles": {"images": "1x3x320x320:1x3x640x640:4x3x640x640"},
        }
    )
    assert r.precision == "int8" and r.dla_core == 0
    assert r.profiles[0] == ShapeProfile("images", (1, 3, 320, 320), (1, 3, 640, 640), (4, 3, 640, 640))
    assert ShapeProfile.parse("x", "1x3x8x8").max == (1, 3, 8, 8)
    with pytest.raises(EngineError, match="min <= opt <= max"):
        ShapeProfile.parse("x", "1x3x64x64:1x3x32x32:1x3x64x64")
    with pytest.raises(EngineError, match="precision 'int4' unknown"):
        BuildRecipe("int4")


def test_tensorrt_version_table() -> None:
    assert features("8.5.2").explicit_batch_flag and not features("8.5.2").progress_monitor
    assert features("10.3.0").builder_flags("int8") == ("INT8", "FP16")
    assert features("10.3.0").onnx_for("fp16") == "fp32"
    t11 = features("11.0.0")
    assert t11.strongly_typed_only and t11.builder_flags("fp16") == () and t11.onnx_for("fp16") == "fp16"
    with pytest.raises(ValueError, match="too old"):
        features("8.4.3")


@pytest.mark.tensorrt
@pytest.mark.skipif(not tensorrt_usable(), reason="needs TensorRT and a CUDA GPU")
def test_real_tensorrt_build_cached(tmp_path: Path) -> None:
    from trt_perception.modelops import tensorrt_build as tb

    onnx = make_convnet(tmp_path / "convnet.onnx")
    recipe = BuildRecipe(
        "fp16",
        workspace_mb=256,
        profiles=(ShapeProfile("x", (1, 3, 32, 32), (1, 3, 64, 64), (2, 3, 128, 128)),),
    )
    cache = EngineCache(tmp_path / "engines")
    build = tb.make_build_fn(tmp_path / "engines" / "timing.cache")
    first = cache.ensure(onnx, recipe, tb.current_target(), build, validate=tb.validate_plan)
    assert first.built and (tmp_path / "engines" / "timing.cache").is_file()
    second = cache.ensure(onnx, recipe, tb.current_target(), build, validate=tb.validate_plan)
    assert not second.built


def test_engine_entries() -> None:
    defaults = {"precision": "fp16", "workspace_mb": 256, "dla_core": -1, "optimization_level": -1}
    model, r = parse_engine_entry(
        "models/seg.onnx;precision=int8;profile.input=1x3x64x64:1x3x128x128:2x3x256x256", defaults
    )
    assert model == "models/seg.onnx" and r.precision == "int8" and r.workspace_mb == 256
    assert r.profiles[0].max == (2, 3, 256, 256) and r.optimization_level is None
    assert parse_engine_entry("m.onnx", defaults)[1] == BuildRecipe("fp16", 256)
    with pytest.raises(EngineError, match="unknown key 'bogus'"):
        parse_engine_entry("m.onnx;bogus=1", defaults)
    with pytest.raises(EngineError, match="not key=value"):
        parse_engine_entry("m.onnx;fp16", defaults)


def test_onnx_for_build_per_tensorrt_version(tmp_path: Path) -> None:
    onnx = make_convnet(tmp_path / "net.onnx")
    work = tmp_path / "engines"
    assert onnx_for_build(onnx, "fp16", features("10.3.0"), work) == onnx  # builder flag does FP16
    fp16 = onnx_for_build(onnx, "fp16", features("11.0.0"), work)  # strongly typed: an FP16 ONNX
    assert fp16 == work / "net.fp16.onnx" and fp16.is_file()
    mtime = fp16.stat().st_mtime_ns
    assert onnx_for_build(onnx, "fp16", features("11.0.0"), work).stat().st_mtime_ns == mtime  # reused
    with pytest.raises(EngineError, match="int8 needs a Q/DQ ONNX"):
        onnx_for_build(onnx, "int8", features("10.3.0"), work)
    qdq = quantize_int8(onnx, tmp_path / "net.int8.onnx", [{"x": np.zeros((1, 3, 16, 16), np.float32)}])
    assert onnx_for_build(qdq, "int8", features("11.0.0"), work) == qdq
