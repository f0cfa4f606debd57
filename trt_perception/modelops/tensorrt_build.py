"""TensorRT builder (8.5 through 11.x, and TensorRT-RTX 1.1+): ONNX -> serialized plan.

The build half of the package's TensorRT calls; the runtime half (the loaded module, its logger, the
TensorRT-RTX validity check) is ``inference/tensorrt_backend.py``, which this module builds on.

``build_plan`` parses an ONNX and builds a plan with the workspace limit, optimization profiles,
persisted timing cache and precision of a ``BuildRecipe``; version differences come from
``trt_features.features``. TensorRT-RTX builds for a target compute capability
(``compute_capability="8.6"``) without a GPU (ahead of time, on a CPU-only machine such as CI),
strongly typed, with no timing cache. ``engine_cache.EngineCache`` owns the caching, locking and
atomic writes around it; ``ensure_engine`` puts the two together.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..inference import cuda_memory as cm
from ..inference.engine import EngineError
from ..inference.tensorrt_backend import (
    FLAVOUR,
    LOGGER,
    check_validity,
    current_features,
    shape_of,
    tensorrt_version,
    trt,
)
from ..inference.trt_features import rtx_compute_capability
from ..io.files import atomic_write
from .engine_cache import BuildRecipe, BuildResult, EngineCache, ProgressFn, Target, onnx_for_build

#: The same module, untyped: for TensorRT-RTX-only API the TensorRT stubs do not declare.
_rtx: Any = trt

log = logging.getLogger(__name__)


class _Progress(trt.IProgressMonitor):
    """TensorRT's build phases -> ``progress`` callback (TensorRT 10+)."""

    def __init__(self, progress: ProgressFn) -> None:
        trt.IProgressMonitor.__init__(self)
        self._progress = progress
        self._steps: dict[str, int] = {}
        self._start = time.monotonic()

    def phase_start(self, phase_name: str, parent_phase: str, num_steps: int) -> None:
        self._steps[phase_name] = num_steps
        if not parent_phase:  # top-level phases only: nested ones flood the log
            self._progress(f"{phase_name} ({num_steps} steps), {time.monotonic() - self._start:.0f} s")

    def step_complete(self, phase_name: str, step: int) -> bool:
        return True  # never cancel

    def phase_finish(self, phase_name: str) -> None:
        self._steps.pop(phase_name, None)


def current_target(device: int = 0, dla_core: int = -1, compute_capability: str | None = None) -> Target:
    """TensorRT flavour + version + GPU, for the engine cache key: this machine's GPU, or with
    ``compute_capability`` (TensorRT-RTX only) any GPU of that compute capability, no GPU needed."""
    if compute_capability:
        cc = _target_cc(compute_capability)
        return Target(tensorrt_version(), f"any sm_{cc.replace('.', '')}", cc, dla_core, FLAVOUR)
    info = cm.device_info(device)
    cc = f"{info.compute_capability[0]}.{info.compute_capability[1]}"
    return Target(tensorrt_version(), info.name, cc, dla_core, FLAVOUR)


def _target_cc(compute_capability: str) -> str:
    """``"8.6"``-style compute capability a TensorRT-RTX build can target; EngineError otherwise."""
    if not current_features().target_compute_capability:
        raise EngineError(
            f"{current_features().name} builds for the GPU it runs on; building for compute capability "
            f"{compute_capability} needs TensorRT-RTX"
        )
    try:
        sm = rtx_compute_capability(compute_capability)
    except ValueError as exc:
        raise EngineError(str(exc)) from None
    return f"{sm[2:-1]}.{sm[-1]}"


def validate_plan(path: Path) -> None:
    """Raise when ``path`` does not deserialize with this TensorRT on this GPU."""
    runtime = trt.Runtime(LOGGER)
    plan = path.read_bytes()
    if current_features().runtime_cache:
        check_validity(runtime, plan, path.name)
    LOGGER.errors = []
    if runtime.deserialize_cuda_engine(plan) is None:
        raise EngineError(f"{path.name} does not deserialize: {'; '.join(LOGGER.errors) or 'unknown'}")


def build_plan(
    onnx_path: Path,
    recipe: BuildRecipe,
    progress: ProgressFn,
    timing_cache: Path | None = None,
    compute_capability: str | None = None,
) -> bytes:
    """Parse ``onnx_path`` and build a serialized plan for ``recipe``; EngineError names the failure.

    ``compute_capability`` (TensorRT-RTX): build ahead of time for GPUs of that compute capability
    (``"8.6"``), without a GPU; None builds for this machine's GPU. ``timing_cache`` is ignored on
    TensorRT-RTX (a no-op there that would force a GPU query; its runtime cache replaces it)."""
    feats = current_features()
    if recipe.dla_core >= 0 and not feats.dla:
        raise EngineError(f"{feats.name} has no DLA: dla_core must be -1, got {recipe.dla_core}")
    target_cc = _target_cc(compute_capability) if compute_capability else None
    builder = trt.Builder(LOGGER)
    flags = 0
    if feats.explicit_batch_flag:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"))  # noqa: B009
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, LOGGER)
    progress(f"parsing {onnx_path.name}")
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"{feats.name} cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if feats.target_compute_capability:
        rtx_config: Any = config  # TensorRT-RTX-only API
        rtx_config.num_compute_capabilities = 1
        sm = rtx_compute_capability(target_cc) if target_cc else "CURRENT"
        rtx_config.set_compute_capability(getattr(_rtx.ComputeCapability, sm), 0)
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, recipe.workspace_mb << 20)
    for flag in feats.builder_flags(recipe.precision):
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if recipe.optimization_level is not None:
        if feats.version < (8, 6):
            raise EngineError(f"optimization_level needs TensorRT 8.6+, this is {tensorrt_version()}")
        config.builder_optimization_level = recipe.optimization_level
    if recipe.dla_core >= 0:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = recipe.dla_core
        if recipe.gpu_fallback:
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    _add_profile(builder, network, config, recipe, onnx_path)
    cache = None if feats.runtime_cache else _load_timing_cache(config, timing_cache)
    monitor = None
    if feats.progress_monitor:
        monitor = _Progress(progress)
        config.progress_monitor = monitor
    LOGGER.errors = []
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(
            f"{feats.name} failed to build {onnx_path.name} ({recipe.precision}): {'; '.join(LOGGER.errors)}"
        )
    if timing_cache is not None and cache is not None:
        atomic_write(timing_cache, bytes(memoryview(cache.serialize())))
    return bytes(memoryview(plan))


def _add_profile(
    builder: trt.Builder,
    network: trt.INetworkDefinition,
    config: trt.IBuilderConfig,
    recipe: BuildRecipe,
    onnx_path: Path,
) -> None:
    given = {p.name: p for p in recipe.profiles}
    profile = builder.create_optimization_profile()
    needed = False
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = shape_of(tensor.shape)
        if tensor.name in given:
            p = given.pop(tensor.name)
            profile.set_shape(
                tensor.name, trt.Dims(list(p.min)), trt.Dims(list(p.opt)), trt.Dims(list(p.max))
            )
            needed = True
        elif shape and shape[0] < 0 and all(d > 0 for d in shape[1:]):
            # Only the batch is dynamic: batch 1..max_batch, tuned for full batches (BuildRecipe).
            rest = list(shape[1:])
            n = recipe.max_batch
            profile.set_shape(tensor.name, trt.Dims([1, *rest]), trt.Dims([n, *rest]), trt.Dims([n, *rest]))
            needed = True
        elif any(d < 0 for d in shape):
            raise EngineError(
                f"{onnx_path.name}: input '{tensor.name}' has dynamic shape {shape}; "
                f"give profiles: {{{tensor.name}: 'min:opt:max'}} in the recipe"
            )
        elif recipe.max_batch > 1:
            raise EngineError(
                f"{onnx_path.name}: max_batch {recipe.max_batch} but input '{tensor.name}' has the fixed "
                f"shape {shape}; export the model with a dynamic batch dimension"
            )
    if given:
        raise EngineError(f"{onnx_path.name}: profile given for unknown input(s) {sorted(given)}")
    if needed:
        config.add_optimization_profile(profile)


def _load_timing_cache(config: trt.IBuilderConfig, path: Path | None) -> trt.ITimingCache | None:
    if path is None:
        return None
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        log.warning("timing cache %s does not match this TensorRT/GPU; starting a new one", path)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=True)
    return cache


def make_build_fn(
    timing_cache: Path | None, compute_capability: str | None = None
) -> Callable[[Path, BuildRecipe, ProgressFn], bytes]:
    """An ``engine_cache.BuildFn`` using a persisted timing cache (TensorRT) or building for a target compute
    capability (TensorRT-RTX; see ``build_plan``)."""

    def build(onnx_path: Path, recipe: BuildRecipe, progress: ProgressFn) -> bytes:
        return build_plan(onnx_path, recipe, progress, timing_cache, compute_capability)

    return build


def timing_cache_path(cache_dir: Path, target: Target) -> Path:
    """One persisted timing cache per TensorRT version and GPU model (shared by all engines)."""
    gpu = "".join(c if c.isalnum() else "_" for c in target.gpu_name)
    return Path(cache_dir) / f"timing.trt{target.tensorrt_version}.{gpu}.sm{target.compute_capability}.cache"


def ensure_engine(
    onnx_path: str | Path,
    recipe: BuildRecipe,
    cache_dir: str | Path,
    progress: ProgressFn | None = None,
    device: int = 0,
    compute_capability: str | None = None,
) -> BuildResult:
    """Build (or reuse) the engine of ``onnx_path`` for ``recipe`` on this machine's TensorRT + GPU.

    ``compute_capability`` (TensorRT-RTX): build ahead of time for GPUs of that compute capability,
    here without a GPU; the plan is then checked by size and checksum only (its validity on the target
    GPU is checked when a node loads it)."""
    cache = EngineCache(cache_dir)
    if compute_capability:
        target = current_target(-1, recipe.dla_core, compute_capability)
        validate = None
    else:
        cm.set_device(device)
        target = current_target(device, recipe.dla_core)
        validate = validate_plan
    feats = current_features()
    source = onnx_for_build(Path(onnx_path), recipe.precision, feats, Path(cache_dir))
    timing = None if feats.runtime_cache else timing_cache_path(Path(cache_dir), target)
    build = make_build_fn(timing, target.compute_capability if feats.target_compute_capability else None)
    return cache.ensure(onnx_path, recipe, target, build, validate, progress, build_onnx=source)
