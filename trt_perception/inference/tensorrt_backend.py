"""TensorRT backend (8.5 through 11.x, and TensorRT-RTX 1.1+): the runtime half of the package's
TensorRT calls (the build half is ``modelops/tensorrt_build.py``).

Flavours
    The module is ``tensorrt`` where real TensorRT is installed, else ``tensorrt_rtx`` (TensorRT for
    RTX: x86 RTX GPUs of compute capability 7.5/8.x/12.x); ``$TRT_PERCEPTION_TENSORRT`` picks one where
    both are (``trt_features.load_tensorrt``). Both share the named-tensor API below; what differs
    comes from ``trt_features.features(version, flavour)``. With TensorRT-RTX a plan is checked with
    ``Runtime.get_engine_validity`` before it is loaded (an unsupported GPU, e.g. Hopper or a Jetson,
    gets an error saying so), and the execution context gets a runtime config whose runtime cache (the
    kernels TensorRT-RTX compiles just in time) is read from and written back to a file next to the
    engine, so the second start skips the compilation.

Runtime (``TensorRTEngine``)
    Deserializes a plan and discovers its I/O with the named-tensor API (``num_io_tensors``,
    ``get_tensor_name``, ``get_tensor_mode``, ``get_tensor_shape``, ``get_tensor_dtype``). Each engine
    owns one execution context, one CUDA stream, a device buffer and a page-locked host buffer per
    tensor. Buffers are sized per input shape and only re-allocated when a larger shape arrives, so
    the hot path is: copy into pinned input -> async H2D -> ``execute_async_v3`` -> async D2H ->
    stream sync. Dynamic inputs are checked against the optimization profile first; a shape outside
    it raises ``EngineError`` naming the tensor, the shape and the profile's min/max.

GPU post-processing (``infer(feeds, outputs_on_device=True)``)
    ``engine.infer(feeds, outputs_on_device=True)`` runs the same way but stops before the device->host copy and
    returns ``{name: DeviceTensor(ptr, shape, dtype)}`` for every output. The work is queued on
    ``engine.stream_handle`` (an ``int`` cudaStream_t): a consumer launches its kernel on that same
    stream (CuPy: ``cupy.cuda.ExternalStream(engine.stream_handle)``; ``DeviceTensor.cupy()`` wraps the
    pointer without a copy), then copies its own small result back. The pointers stay valid until
    the next ``infer`` call with a larger shape or ``close()``. Feeds may be numpy arrays (copied
    through pinned memory) or ``DeviceTensor`` (copied device-to-device on the stream).

Builder
    Building plans is offline model work: ``modelops/tensorrt_build.py``, on top of this module.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..io.files import atomic_write
from . import cuda_memory as cm
from .engine import Engine, EngineError, LoadedSpecs, TensorSpec
from .engine_sidecar import engine_metadata
from .tensors import Dim
from .trt_features import TensorRTFeatures, features, load_tensorrt

_MODULE, FLAVOUR = load_tensorrt()
if TYPE_CHECKING:
    import tensorrt as trt  # the TensorRT 10 stubs type the API both flavours share
else:
    trt = _MODULE
#: The same module, untyped: for TensorRT-RTX-only API the TensorRT stubs do not declare.
_rtx: Any = _MODULE

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


#: The one TensorRT logger (runtime and builder): the last errors go into exception messages.
LOGGER = _Logger()


def tensorrt_version() -> str:
    return str(trt.__version__)


def current_features() -> TensorRTFeatures:
    """The version-feature set of the loaded TensorRT flavour."""
    return features(tensorrt_version(), FLAVOUR)


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
        import cupy  # lazy: optional, only for GPU post-processing

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


def shape_of(d: trt.Dims) -> tuple[int, ...]:
    # The stubs do not declare Dims iterable; index it.
    return tuple(int(d[i]) for i in range(len(d)))


def _np_dtype(dt: trt.DataType, name: str) -> np.dtype:
    try:
        return np.dtype(trt.nptype(dt))
    except TypeError:
        raise EngineError(f"tensor '{name}' has TensorRT type {dt} with no numpy equivalent") from None


# -- TensorRT-RTX runtime: validity check and runtime cache ---------------------------------------

#: ``EngineInvalidityDiagnostics`` bits (TensorRT-RTX 1.1+) -> what to tell the user.
_INVALIDITY = {
    1: "built by another TensorRT-RTX version: rebuild it",
    2: "this GPU's compute capability is not supported by TensorRT-RTX (it runs on x86 RTX GPUs of compute "
    "capability 7.5, 8.0, 8.6, 8.9, 12.x; Hopper, data-centre and Jetson GPUs need the TensorRT flavour) "
    "or differs from the one the engine was built for",
    4: "the CUDA driver is too old",
    8: "the CUDA runtime is too old",
    16: "not enough GPU memory",
    32: "the file is not a TensorRT-RTX engine (corrupt or built by TensorRT)",
    64: "CUDA is not installed correctly",
}


def invalidity_reasons(diagnostics: int) -> list[str]:
    """The user-facing reasons for a TensorRT-RTX ``get_engine_validity`` diagnostics bit mask."""
    return [text for bit, text in _INVALIDITY.items() if diagnostics & bit]


def check_validity(runtime: Any, plan: bytes, name: str, device: int = 0) -> None:
    """TensorRT-RTX: raise EngineError when ``plan`` cannot run on this machine, saying why
    (unsupported GPU, version, driver...); a SUBOPTIMAL plan runs, with a warning."""
    validity, diagnostics = runtime.get_engine_validity(plan)
    if validity == _rtx.EngineValidity.VALID:
        return
    reasons = "; ".join(invalidity_reasons(int(diagnostics))) or "no reason given (no GPU or CUDA driver?)"
    try:
        info = cm.device_info(device)
        gpu = f"{info.name}, compute capability {info.compute_capability[0]}.{info.compute_capability[1]}"
    except cm.CudaError as exc:
        gpu = f"no usable GPU: {exc}"
    if validity == _rtx.EngineValidity.SUBOPTIMAL:
        log.warning("%s runs suboptimally on this GPU (%s): %s", name, gpu, reasons)
        return
    raise EngineError(
        f"{name} cannot run with TensorRT-RTX {tensorrt_version()} on this GPU ({gpu}): {reasons}"
    )


class RuntimeCache:
    """TensorRT-RTX runtime config with a runtime cache persisted in ``path`` (kernels compiled just in
    time on this GPU). A missing, corrupt or incompatible file (other GPU, older TensorRT-RTX or driver)
    starts an empty cache; ``save()`` writes it back atomically."""

    def __init__(self, engine: Any, path: Path) -> None:
        self.path = path
        self.config = engine.create_runtime_config()
        self.cache = self.config.create_runtime_cache()
        blob = b""
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("runtime cache %s unreadable (%s): starting an empty one", path, exc)
        self.loaded = bool(blob) and bool(self.cache.deserialize(blob))
        if blob and not self.loaded:
            log.warning(
                "runtime cache %s does not match this GPU/TensorRT-RTX/driver: starting an empty one", path
            )
        self.config.set_runtime_cache(self.cache)

    def save(self) -> None:
        try:
            atomic_write(self.path, bytes(memoryview(self.cache.serialize())))
        except OSError as exc:  # a read-only engine folder costs the next start a recompile, nothing more
            log.warning("cannot write runtime cache %s: %s", self.path, exc)


class TensorRTEngine(LoadedSpecs, Engine):
    """A deserialized TensorRT plan; see the module docstring for buffers, profiles and device I/O."""

    backend = "tensorrt"
    device_outputs = True

    def __init__(
        self,
        path: str | Path,
        device: int = 0,
        profile: int = 0,
        dla_core: int = -1,
        runtime_cache: str | Path | None = None,
    ) -> None:
        """``runtime_cache`` (TensorRT-RTX): file of the just-in-time compiled kernels, read here and
        written back by ``close()``; default ``<engine>.runtime_cache`` next to the engine."""
        super().__init__(path)
        self._closed = True
        if not self.path.is_file():
            raise EngineError(f"engine file not found: {self.path}")
        try:
            plan = self.path.read_bytes()
        except OSError as exc:
            raise EngineError(f"cannot read engine {self.path}: {exc}") from exc
        feats = current_features()
        cm.set_device(device)
        self._runtime = trt.Runtime(LOGGER)
        if dla_core >= 0:
            self._runtime.DLA_core = dla_core
        if feats.runtime_cache and plan:
            check_validity(self._runtime, plan, self.path.name, device)
        LOGGER.errors = []
        engine = self._runtime.deserialize_cuda_engine(plan) if plan else None
        if engine is None:
            detail = "; ".join(LOGGER.errors) or "empty or unreadable plan"
            raise EngineError(
                f"cannot deserialize TensorRT engine {self.path} with {feats.name} ({tensorrt_version()}) "
                f"(corrupt, or built for another TensorRT version or GPU: rebuild it): {detail}"
            )
        self._engine = engine
        if not 0 <= profile < engine.num_optimization_profiles:
            raise EngineError(
                f"{self.path.name}: profile {profile} requested but the engine has "
                f"{engine.num_optimization_profiles}"
            )
        self._runtime_cache: RuntimeCache | None = None
        if feats.runtime_cache:
            cache_file = (
                Path(runtime_cache)
                if runtime_cache
                else self.path.with_name(self.path.name + ".runtime_cache")
            )
            self._runtime_cache = RuntimeCache(engine, cache_file)
            self._context = engine.create_execution_context(self._runtime_cache.config)
        else:
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
            shape = shape_of(engine.get_tensor_shape(name))
            dims: tuple[Dim, ...] = tuple(d if d >= 0 else None for d in shape)
            spec = TensorSpec(name, dims, _np_dtype(engine.get_tensor_dtype(name), name))
            pmin = pmax = None
            if is_input and spec.is_dynamic:
                lo, _opt, hi = engine.get_tensor_profile_shape(name, profile)
                pmin, pmax = shape_of(lo), shape_of(hi)
            self._bindings[name] = _Binding(
                spec, is_input, pmin, pmax, cm.DeviceBuffer(1), cm.PinnedBuffer((0,), spec.dtype)
            )
        self._inputs = [b.spec for b in self._bindings.values() if b.is_input]
        self._outputs = [b.spec for b in self._bindings.values() if not b.is_input]
        self._feed_shapes: dict[str, tuple[int, ...]] = {}
        self._lock = threading.Lock()  # one context and stream: serialize callers
        # What the ONNX knew (labels, charset, decoder...) comes from the engine cache's sidecar.
        self._metadata = {
            **engine_metadata(self.path),
            "tensorrt_version": tensorrt_version(),
            "tensorrt_flavour": FLAVOUR,
            "device": cm.device_info(device).name,
        }

    # -- Engine interface
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

    def _infer(
        self, feeds: Mapping[str, np.ndarray | DeviceTensor], outputs_on_device: bool
    ) -> dict[str, Any]:
        """Host outputs are the engine's pinned buffers (copy to keep past the next call); device
        outputs are ``DeviceTensor`` views, queued on ``stream_handle`` and not synchronized."""
        with self._lock:
            self._enqueue(feeds)
            if outputs_on_device:
                return {
                    s.name: DeviceTensor(
                        self._bindings[s.name].device.ptr, self._bindings[s.name].shape, s.dtype
                    )
                    for s in self._outputs
                }
            out = {}
            for spec in self._outputs:
                b = self._bindings[spec.name]
                host = b.host.resize(b.shape)
                cm.copy_dtoh_async(host, b.device.ptr, self._stream)
                out[spec.name] = host
            self._stream.synchronize()
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
        if self._runtime_cache is not None:
            self._runtime_cache.save()  # after the context: the kernels it compiled are in the cache
            self._runtime_cache = None
        del self._engine
        self._stream.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            log.debug("closing %s failed", self.path, exc_info=True)

    # -- internals
    def _check_profile(self, feeds: Mapping[str, np.ndarray | DeviceTensor]) -> None:
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
        self._check_profile(feeds)
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
            raise EngineError(f"{self.path.name}: execute_async_v3 failed: {'; '.join(LOGGER.errors)}")

    def _allocate(self) -> None:
        """Size every buffer for the current input shapes; addresses are re-bound only when they move."""
        for name, b in self._bindings.items():
            shape = self._feed_shapes[name] if b.is_input else shape_of(self._context.get_tensor_shape(name))
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
