"""TensorRT backend (8.5 through 11.x): every TensorRT call of the package lives in this module.

Runtime (``TensorRTEngine``)
    Deserializes a plan and discovers its I/O with the named-tensor API (``num_io_tensors``,
    ``get_tensor_name``, ``get_tensor_mode``, ``get_tensor_shape``, ``get_tensor_dtype``). Each engine
    owns one execution context, one CUDA stream, a device buffer and a page-locked host buffer per
    tensor. Buffers are sized per input shape and only re-allocated when a larger shape arrives, so
    the hot path is: copy into pinned input -> async H2D -> ``execute_async_v3`` -> async D2H ->
    stream sync. Dynamic inputs are checked against the optimization profile first; a shape outside
    it raises ``EngineError`` naming the tensor, the shape and the profile's min/max.

GPU post-processing (``infer_device``)
    ``engine.infer_device(feeds)`` runs the same way but stops before the device->host copy and
    returns ``{name: DeviceTensor(ptr, shape, dtype)}`` for every output. The work is queued on
    ``engine.stream_handle`` (an ``int`` cudaStream_t): a consumer launches its kernel on that same
    stream (CuPy: ``cupy.cuda.ExternalStream(engine.stream_handle)``; ``DeviceTensor.cupy()`` wraps the
    pointer without a copy), then copies its own small result back. The pointers stay valid until
    the next ``infer*`` call with a larger shape or ``close()``. Feeds may be numpy arrays (copied
    through pinned memory) or ``DeviceTensor`` (copied device-to-device on the stream).

Builder (``build_plan``)
    ONNX -> serialized plan with workspace limit, optimization profiles, persisted timing cache and
    the precision of a ``BuildRecipe``; version differences come from ``trt_features.features``.
    ``builder.EngineCache`` owns the caching, locking and atomic writes around it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorrt as trt

from . import cuda_memory as cm
from .builder import BuildRecipe, BuildResult, EngineCache, ProgressFn, Target, atomic_write, onnx_for_build
from .engine import Dim, Engine, EngineError, TensorSpec
from .trt_features import features

log = logging.getLogger(__name__)

_SEVERITY_TO_LOGGING = {
    trt.ILogger.Severity.INTERNAL_ERROR: logging.CRITICAL,
    trt.ILogger.Severity.ERROR: logging.ERROR,
    trt.ILogger.Severity.WARNING: logging.WARNING,
    trt.ILogger.Severity.INFO: logging.INFO,
    trt.ILogger.Severity.VERBOSE: logging.DEBUG,
}


class _Logger(trt.ILogger):
    """Routes TensorRT's log into ``logging`` and keeps the last errors for exception messages."""

    def __init__(self, min_level: int = logging.WARNING) -> None:
        trt.ILogger.__init__(self)
        self.min_level = min_level
        self.errors: list[str] = []

    def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
        level = _SEVERITY_TO_LOGGING.get(severity, logging.INFO)
        if level >= logging.ERROR:
            self.errors = [*self.errors[-4:], msg]  # the last few, for exception messages
        if level >= self.min_level:
            log.log(level, "TensorRT: %s", msg)


_LOGGER = _Logger()


def tensorrt_version() -> str:
    return str(trt.__version__)


@dataclass(frozen=True)
class DeviceTensor:
    """A tensor in GPU memory: raw pointer, concrete shape and numpy dtype."""

    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def cupy(self) -> Any:
        """A CuPy array over the same memory (no copy); needs CuPy."""
        import cupy  # optional, only for GPU post-processing

        mem = cupy.cuda.UnownedMemory(self.ptr, self.nbytes, self)
        return cupy.ndarray(self.shape, self.dtype, cupy.cuda.MemoryPointer(mem, 0))


@dataclass
class _Binding:
    spec: TensorSpec
    is_input: bool
    profile_min: tuple[int, ...] | None
    profile_max: tuple[int, ...] | None
    device: cm.DeviceBuffer
    host: cm.PinnedBuffer
    shape: tuple[int, ...] = ()
    bound: bool = False  # set_tensor_address done for the current device pointer


def _dims(d: trt.Dims) -> tuple[int, ...]:
    # The stubs do not declare Dims iterable; index it.
    return tuple(int(d[i]) for i in range(len(d)))


def _np_dtype(dt: trt.DataType, name: str) -> np.dtype:
    try:
        return np.dtype(trt.nptype(dt))
    except TypeError:
        raise EngineError(f"tensor '{name}' has TensorRT type {dt} with no numpy equivalent") from None


class TensorRTEngine(Engine):
    """A deserialized TensorRT plan; see the module docstring for buffers, profiles and device I/O."""

    backend = "tensorrt"

    def __init__(self, path: str | Path, device: int = 0, profile: int = 0, dla_core: int = -1) -> None:
        super().__init__(path)
        self._closed = True
        if not self.path.is_file():
            raise EngineError(f"engine file not found: {self.path}")
        try:
            plan = self.path.read_bytes()
        except OSError as exc:
            raise EngineError(f"cannot read engine {self.path}: {exc}") from exc
        cm.set_device(device)
        self._runtime = trt.Runtime(_LOGGER)
        if dla_core >= 0:
            self._runtime.DLA_core = dla_core
        _LOGGER.errors = []
        engine = self._runtime.deserialize_cuda_engine(plan) if plan else None
        if engine is None:
            detail = "; ".join(_LOGGER.errors) or "empty or unreadable plan"
            raise EngineError(
                f"cannot deserialize TensorRT engine {self.path} with TensorRT {tensorrt_version()} "
                f"(corrupt, or built for another TensorRT version or GPU: rebuild it): {detail}"
            )
        self._engine = engine
        if not 0 <= profile < engine.num_optimization_profiles:
            raise EngineError(
                f"{self.path.name}: profile {profile} requested but the engine has "
                f"{engine.num_optimization_profiles}"
            )
        self._context = engine.create_execution_context()
        if self._context is None:
            raise EngineError(f"{self.path.name}: cannot create an execution context (out of GPU memory?)")
        self._stream = cm.Stream()
        self._closed = False
        if profile:
            self._context.set_optimization_profile_async(profile, self._stream.handle)
        self._bindings: dict[str, _Binding] = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = _dims(engine.get_tensor_shape(name))
            dims: tuple[Dim, ...] = tuple(d if d >= 0 else None for d in shape)
            spec = TensorSpec(name, dims, _np_dtype(engine.get_tensor_dtype(name), name))
            pmin = pmax = None
            if is_input and spec.is_dynamic:
                lo, _opt, hi = engine.get_tensor_profile_shape(name, profile)
                pmin, pmax = _dims(lo), _dims(hi)
            self._bindings[name] = _Binding(
                spec, is_input, pmin, pmax, cm.DeviceBuffer(1), cm.PinnedBuffer((0,), spec.dtype)
            )
        self._inputs = [b.spec for b in self._bindings.values() if b.is_input]
        self._outputs = [b.spec for b in self._bindings.values() if not b.is_input]
        self._feed_shapes: dict[str, tuple[int, ...]] = {}
        self._lock = threading.Lock()  # one context and stream: serialize callers
        self._metadata = {"tensorrt_version": tensorrt_version(), "device": cm.device_info(device).name}

    # -- Engine interface
    @property
    def inputs(self) -> list[TensorSpec]:
        return self._inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self._outputs

    @property
    def metadata(self) -> dict[str, str]:
        return self._metadata

    @property
    def stream_handle(self) -> int:
        """The engine's cudaStream_t as an int: queue GPU post-processing on it."""
        return self._stream.handle

    def profile_range(self, name: str) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """(min, max) shapes of a dynamic input in the active profile; None for a static one."""
        b = self._bindings[name]
        return None if b.profile_min is None or b.profile_max is None else (b.profile_min, b.profile_max)

    def batch_limits(self, name: str | None = None) -> tuple[int, int | None]:
        spec = self.input(name)
        r = self.profile_range(spec.name)
        if r is None or not spec.shape or spec.shape[0] is not None:
            return super().batch_limits(name)
        return r[0][0], r[1][0]

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; the returned arrays are the engine's pinned buffers (copy to keep past the next call)."""
        with self._lock:
            start = time.perf_counter()
            self._enqueue(feeds)
            out = {}
            for spec in self._outputs:
                b = self._bindings[spec.name]
                host = b.host.resize(b.shape)
                cm.copy_dtoh_async(host, b.device.ptr, self._stream)
                out[spec.name] = host
            self._stream.synchronize()
            self.last_latency_ms = (time.perf_counter() - start) * 1e3
            return out

    def infer_device(self, feeds: Mapping[str, np.ndarray | DeviceTensor]) -> dict[str, DeviceTensor]:
        """Queue the inference on ``stream_handle`` and return the outputs where they are, on the GPU.

        Nothing is synchronized: the caller's next work on the same stream sees the results;
        ``last_latency_ms`` is the host-side enqueue time only.
        """
        with self._lock:
            start = time.perf_counter()
            self._enqueue(feeds)
            out = {
                s.name: DeviceTensor(self._bindings[s.name].device.ptr, self._bindings[s.name].shape, s.dtype)
                for s in self._outputs
            }
            self.last_latency_ms = (time.perf_counter() - start) * 1e3
            return out

    def synchronize(self) -> None:
        self._stream.synchronize()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stream.synchronize()
        for b in self._bindings.values():
            b.device.free()
            b.host.free()
        del self._context
        del self._engine
        self._stream.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            log.debug("closing %s failed", self.path, exc_info=True)

    # -- internals
    def _check(self, feeds: Mapping[str, np.ndarray | DeviceTensor]) -> None:
        self.check_feeds(feeds)
        for name, arr in feeds.items():
            b = self._bindings[name]
            shape = tuple(arr.shape)
            if (
                b.profile_min is not None
                and b.profile_max is not None
                and not all(lo <= s <= hi for lo, s, hi in zip(b.profile_min, shape, b.profile_max))
            ):
                raise EngineError(
                    f"{self.path.name}: input '{name}' shape {shape} is outside the optimization profile "
                    f"(min {b.profile_min}, max {b.profile_max}); rebuild the engine with a wider profile"
                )

    def _enqueue(self, feeds: Mapping[str, np.ndarray | DeviceTensor]) -> None:
        if self._closed:
            raise EngineError(f"{self.path.name}: engine is closed")
        self._check(feeds)
        shapes_changed = False
        for name, arr in feeds.items():
            shape = tuple(arr.shape)
            if self._feed_shapes.get(name) != shape:
                if not self._context.set_input_shape(name, shape):
                    raise EngineError(f"{self.path.name}: TensorRT rejected shape {shape} for input '{name}'")
                self._feed_shapes[name] = shape
                shapes_changed = True
        if shapes_changed:
            self._allocate()
        for name, arr in feeds.items():
            b = self._bindings[name]
            if isinstance(arr, DeviceTensor):
                cm.copy_dtod_async(b.device.ptr, arr.ptr, arr.nbytes, self._stream)
            else:
                host = b.host.resize(b.shape)
                np.copyto(host, arr)
                cm.copy_htod_async(b.device.ptr, host, self._stream)
        if not self._context.execute_async_v3(self._stream.handle):
            raise EngineError(f"{self.path.name}: execute_async_v3 failed: {'; '.join(_LOGGER.errors)}")

    def _allocate(self) -> None:
        """Size every buffer for the current input shapes; addresses are re-bound only when they move."""
        for name, b in self._bindings.items():
            shape = self._feed_shapes[name] if b.is_input else _dims(self._context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise EngineError(
                    f"{self.path.name}: output '{name}' has a data-dependent shape {shape}; not supported"
                )
            b.shape = shape
            nbytes = int(np.prod(shape, dtype=np.int64)) * b.spec.dtype.itemsize
            moved = b.device.ensure(nbytes)
            b.host.resize(shape)
            if moved or not b.bound:
                if not self._context.set_tensor_address(name, b.device.ptr):
                    raise EngineError(f"{self.path.name}: set_tensor_address failed for '{name}'")
                b.bound = True


# -- builder ------------------------------------------------------------------------------------------


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


def current_target(device: int = 0, dla_core: int = -1) -> Target:
    """TensorRT version + GPU of this machine, for the engine cache key."""
    info = cm.device_info(device)
    cc = f"{info.compute_capability[0]}.{info.compute_capability[1]}"
    return Target(tensorrt_version(), info.name, cc, dla_core)


def validate_plan(path: Path) -> None:
    """Raise when ``path`` does not deserialize with this TensorRT on this GPU."""
    runtime = trt.Runtime(_LOGGER)
    _LOGGER.errors = []
    if runtime.deserialize_cuda_engine(path.read_bytes()) is None:
        raise EngineError(f"{path.name} does not deserialize: {'; '.join(_LOGGER.errors) or 'unknown'}")


def build_plan(
    onnx_path: Path,
    recipe: BuildRecipe,
    progress: ProgressFn,
    timing_cache: Path | None = None,
) -> bytes:
    """Parse ``onnx_path`` and build a serialized plan for ``recipe``; EngineError names the failure."""
    feats = features(tensorrt_version())
    builder = trt.Builder(_LOGGER)
    flags = 0
    if feats.explicit_batch_flag:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"))  # noqa: B009
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, _LOGGER)
    progress(f"parsing {onnx_path.name}")
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
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
    cache = _load_timing_cache(config, timing_cache)
    monitor = None
    if feats.progress_monitor:
        monitor = _Progress(progress)
        config.progress_monitor = monitor
    _LOGGER.errors = []
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(
            f"TensorRT failed to build {onnx_path.name} ({recipe.precision}): {'; '.join(_LOGGER.errors)}"
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
        shape = _dims(tensor.shape)
        if tensor.name in given:
            p = given.pop(tensor.name)
            profile.set_shape(
                tensor.name, trt.Dims(list(p.min)), trt.Dims(list(p.opt)), trt.Dims(list(p.max))
            )
            needed = True
        elif any(d < 0 for d in shape):
            raise EngineError(
                f"{onnx_path.name}: input '{tensor.name}' has dynamic shape {shape}; "
                f"give profiles: {{{tensor.name}: 'min:opt:max'}} in the recipe"
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


def make_build_fn(timing_cache: Path | None) -> Callable[[Path, BuildRecipe, ProgressFn], bytes]:
    """A ``builder.BuildFn`` using a persisted timing cache."""

    def build(onnx_path: Path, recipe: BuildRecipe, progress: ProgressFn) -> bytes:
        return build_plan(onnx_path, recipe, progress, timing_cache)

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
) -> BuildResult:
    """Build (or reuse) the engine of ``onnx_path`` for ``recipe`` on this machine's TensorRT + GPU."""
    cm.set_device(device)
    cache = EngineCache(cache_dir)
    target = current_target(device, recipe.dla_core)
    source = onnx_for_build(
        Path(onnx_path), recipe.precision, features(target.tensorrt_version), Path(cache_dir)
    )
    build = make_build_fn(timing_cache_path(Path(cache_dir), target))
    return cache.ensure(onnx_path, recipe, target, build, validate_plan, progress, build_onnx=source)
