"""CUDA memory for the TensorRT backend: device buffers, page-locked host buffers, streams and copies.

Two implementations behind one small surface, chosen once at import of the first use:

* cuda-python (``cuda-bindings``): ``cuda.bindings.runtime`` (12.6+ layout) or the older
  ``from cuda import cudart`` import path; NVIDIA's own TensorRT samples use it since 10.14.
* pycuda, where only pycuda is installed (older JetPack images).

Everything here works on raw integer device pointers and integer stream handles, which is what
TensorRT's ``set_tensor_address`` / ``execute_async_v3`` and any CuPy/Numba kernel take. Errors are
raised as ``CudaError`` naming the call and the CUDA error.

    stream = Stream()
    dev = DeviceBuffer(1 << 20)
    host = PinnedBuffer((256, 1024), np.float32)
    host.array[:] = 1.0
    copy_htod_async(dev.ptr, host.array, stream)
    copy_dtoh_async(host.array, dev.ptr, stream)
    stream.synchronize()
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np


class CudaError(RuntimeError):
    """A CUDA call failed or no CUDA implementation/device is available."""


@dataclass(frozen=True)
class DeviceInfo:
    """What the engine cache key needs to know about a GPU."""

    index: int
    name: str
    compute_capability: tuple[int, int]
    total_memory: int

    @property
    def sm(self) -> str:
        return f"sm_{self.compute_capability[0]}{self.compute_capability[1]}"


class _CudaPython:
    """cuda-python runtime API; every call returns ``(err, *values)``."""

    name = "cuda-python"

    def __init__(self, rt: Any) -> None:
        self.rt = rt
        self.success = rt.cudaError_t.cudaSuccess

    def check(self, call: str, result: Any) -> Any:
        err, *values = result if isinstance(result, tuple) else (result,)
        if err != self.success:
            _, msg = self.rt.cudaGetErrorString(err)
            raise CudaError(f"{call} failed: {getattr(err, 'name', err)} ({_text(msg)})")
        return values[0] if len(values) == 1 else values

    def device_count(self) -> int:
        err, count = self.rt.cudaGetDeviceCount()
        return int(count) if err == self.success else 0

    def device_info(self, index: int) -> DeviceInfo:
        props = self.check("cudaGetDeviceProperties", self.rt.cudaGetDeviceProperties(index))
        return DeviceInfo(index, _text(props.name), (props.major, props.minor), int(props.totalGlobalMem))

    def set_device(self, index: int) -> None:
        self.check("cudaSetDevice", self.rt.cudaSetDevice(index))

    def malloc(self, nbytes: int) -> int:
        return int(self.check("cudaMalloc", self.rt.cudaMalloc(nbytes)))

    def free(self, ptr: int) -> None:
        self.check("cudaFree", self.rt.cudaFree(ptr))

    def host_alloc(self, nbytes: int) -> tuple[int, Any]:
        ptr = int(self.check("cudaHostAlloc", self.rt.cudaHostAlloc(nbytes, self.rt.cudaHostAllocDefault)))
        return ptr, None

    def host_free(self, ptr: int, keep: Any) -> None:
        self.check("cudaFreeHost", self.rt.cudaFreeHost(ptr))

    def stream_create(self) -> tuple[int, Any]:
        flags = self.rt.cudaStreamNonBlocking
        stream = self.check("cudaStreamCreateWithFlags", self.rt.cudaStreamCreateWithFlags(flags))
        return int(stream), stream

    def stream_destroy(self, obj: Any) -> None:
        self.check("cudaStreamDestroy", self.rt.cudaStreamDestroy(obj))

    def stream_sync(self, handle: int) -> None:
        self.check("cudaStreamSynchronize", self.rt.cudaStreamSynchronize(handle))

    def memcpy(self, dst: int, src: int, nbytes: int, kind: str, stream: int | None) -> None:
        k = getattr(self.rt.cudaMemcpyKind, f"cudaMemcpy{kind}")
        if stream is None:
            self.check("cudaMemcpy", self.rt.cudaMemcpy(dst, src, nbytes, k))
        else:
            self.check("cudaMemcpyAsync", self.rt.cudaMemcpyAsync(dst, src, nbytes, k, stream))

    def memset(self, ptr: int, value: int, nbytes: int) -> None:
        self.check("cudaMemset", self.rt.cudaMemset(ptr, value, nbytes))


class _PyCuda:
    """pycuda: owns its context (``pycuda.autoinit``); objects are kept alive alongside the pointers."""

    name = "pycuda"

    def __init__(self, drv: Any) -> None:
        importlib.import_module("pycuda.autoinit")  # creates and pushes the primary context
        self.drv = drv
        self._allocs: dict[int, Any] = {}  # pointer -> DeviceAllocation (frees when dropped)

    def check(self, call: str, result: Any) -> Any:
        return result

    def device_count(self) -> int:
        return int(self.drv.Device.count())

    def device_info(self, index: int) -> DeviceInfo:
        dev = self.drv.Device(index)
        return DeviceInfo(index, str(dev.name()), tuple(dev.compute_capability()), int(dev.total_memory()))

    def set_device(self, index: int) -> None:
        if index != 0:
            raise CudaError("the pycuda fallback uses device 0 only (pycuda.autoinit)")

    def malloc(self, nbytes: int) -> int:
        alloc = self.drv.mem_alloc(nbytes)
        ptr = int(alloc)
        self._allocs[ptr] = alloc
        return ptr

    def free(self, ptr: int) -> None:
        alloc = self._allocs.pop(ptr, None)
        if alloc is not None:
            alloc.free()

    def host_alloc(self, nbytes: int) -> tuple[int, Any]:
        arr = self.drv.pagelocked_empty(nbytes, np.uint8)
        return int(arr.ctypes.data), arr

    def host_free(self, ptr: int, keep: Any) -> None:
        keep.base.free()  # the HostAllocation behind pagelocked_empty

    def stream_create(self) -> tuple[int, Any]:
        stream = self.drv.Stream()
        return int(stream.handle), stream

    def stream_destroy(self, obj: Any) -> None:
        del obj

    def stream_sync(self, handle: int) -> None:
        if handle == 0:
            self.drv.Context.synchronize()
        else:
            _PYCUDA_STREAMS[handle].synchronize()

    def memcpy(self, dst: int, src: int, nbytes: int, kind: str, stream: int | None) -> None:
        # pycuda's typed copies need numpy arrays on the host side; wrap the raw host pointer.
        if kind == "HostToDevice":
            host = _host_view(src, nbytes)
            if stream is None:
                self.drv.memcpy_htod(dst, host)
            else:
                self.drv.memcpy_htod_async(dst, host, _PYCUDA_STREAMS[stream])
        elif kind == "DeviceToHost":
            host = _host_view(dst, nbytes)
            if stream is None:
                self.drv.memcpy_dtoh(host, src)
            else:
                self.drv.memcpy_dtoh_async(host, src, _PYCUDA_STREAMS[stream])
        elif stream is None:
            self.drv.memcpy_dtod(dst, src, nbytes)
        else:
            self.drv.memcpy_dtod_async(dst, src, nbytes, _PYCUDA_STREAMS[stream])

    def memset(self, ptr: int, value: int, nbytes: int) -> None:
        self.drv.memset_d8(ptr, value, nbytes)


_PYCUDA_STREAMS: dict[int, Any] = {}


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).split(b"\0", 1)[0].decode(errors="replace")
    return str(value)


def _host_view(ptr: int, nbytes: int) -> np.ndarray:
    return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ptr))


@lru_cache(maxsize=1)
def _api() -> _CudaPython | _PyCuda:
    """The first importable implementation; CudaError lists what was tried."""
    tried = []
    for module in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return _CudaPython(importlib.import_module(module))
        except ImportError as exc:
            tried.append(f"{module}: {exc}")
    try:
        return _PyCuda(importlib.import_module("pycuda.driver"))
    except Exception as exc:  # pycuda.autoinit raises its own errors without a GPU
        tried.append(f"pycuda: {exc}")
    raise CudaError("no CUDA Python binding usable (pip install cuda-bindings); tried " + "; ".join(tried))


def implementation() -> str:
    """``cuda-python`` or ``pycuda``."""
    return _api().name


def cuda_available() -> bool:
    """True when a binding imports and at least one GPU is visible with a working driver."""
    try:
        return _api().device_count() > 0
    except Exception:
        return False


def device_info(index: int = 0) -> DeviceInfo:
    return _api().device_info(index)


def set_device(index: int) -> None:
    _api().set_device(index)


class Stream:
    """One CUDA stream (non-blocking); ``handle`` is the integer TensorRT and kernels take."""

    def __init__(self) -> None:
        self.handle, self._obj = _api().stream_create()
        if isinstance(_api(), _PyCuda):
            _PYCUDA_STREAMS[self.handle] = self._obj

    def synchronize(self) -> None:
        _api().stream_sync(self.handle)

    def close(self) -> None:
        if self._obj is not None:
            _PYCUDA_STREAMS.pop(self.handle, None)
            _api().stream_destroy(self._obj)
            self._obj = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class DeviceBuffer:
    """``nbytes`` of device memory; grows with ``ensure`` (reallocates only when larger)."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = 0
        self.ptr = 0
        self.ensure(nbytes)

    def ensure(self, nbytes: int) -> bool:
        """Make room for ``nbytes``; returns True when the pointer changed."""
        if nbytes <= self.nbytes and self.ptr:
            return False
        self.free()
        self.ptr = _api().malloc(max(int(nbytes), 1))
        self.nbytes = max(int(nbytes), 1)
        return True

    def memset(self, value: int = 0) -> None:
        _api().memset(self.ptr, value, self.nbytes)

    def free(self) -> None:
        if self.ptr:
            _api().free(self.ptr)
            self.ptr, self.nbytes = 0, 0

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.free()


class PinnedBuffer:
    """Page-locked host memory seen as a numpy array (async copies need it to overlap)."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype | type) -> None:
        self.dtype = np.dtype(dtype)
        self.capacity = 0
        self._ptr = 0
        self._keep: Any = None
        self.array = np.empty(0, self.dtype)
        self.resize(shape)

    def resize(self, shape: tuple[int, ...]) -> np.ndarray:
        """A view of ``shape``; reallocates only when it needs more bytes than held."""
        nbytes = int(np.prod(shape, dtype=np.int64)) * self.dtype.itemsize
        if nbytes > self.capacity:
            self.free()
            self._ptr, self._keep = _api().host_alloc(max(nbytes, 1))
            self.capacity = max(nbytes, 1)
        flat = _host_view(self._ptr, self.capacity).view(self.dtype) if self.capacity else self.array
        self.array = flat[: nbytes // self.dtype.itemsize].reshape(shape)
        return self.array

    @property
    def ptr(self) -> int:
        return self._ptr

    def free(self) -> None:
        if self._ptr:
            _api().host_free(self._ptr, self._keep)
            self._ptr, self._keep, self.capacity = 0, None, 0

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.free()


def _host_ptr(arr: np.ndarray) -> int:
    if not arr.flags.c_contiguous:
        raise CudaError("host array must be C-contiguous for a CUDA copy (use np.ascontiguousarray)")
    return int(arr.ctypes.data)


def copy_htod(dst_ptr: int, src: np.ndarray) -> None:
    """Blocking host -> device copy of the whole ``src`` array."""
    _api().memcpy(dst_ptr, _host_ptr(src), src.nbytes, "HostToDevice", None)


def copy_dtoh(dst: np.ndarray, src_ptr: int) -> None:
    """Blocking device -> host copy filling the whole ``dst`` array."""
    _api().memcpy(_host_ptr(dst), src_ptr, dst.nbytes, "DeviceToHost", None)


def copy_htod_async(dst_ptr: int, src: np.ndarray, stream: Stream) -> None:
    """Queue host -> device on ``stream``; ``src`` should be pinned (``PinnedBuffer``) to overlap."""
    _api().memcpy(dst_ptr, _host_ptr(src), src.nbytes, "HostToDevice", stream.handle)


def copy_dtoh_async(dst: np.ndarray, src_ptr: int, stream: Stream) -> None:
    """Queue device -> host on ``stream``; valid after ``stream.synchronize()``."""
    _api().memcpy(_host_ptr(dst), src_ptr, dst.nbytes, "DeviceToHost", stream.handle)


def copy_dtod_async(dst_ptr: int, src_ptr: int, nbytes: int, stream: Stream) -> None:
    _api().memcpy(dst_ptr, src_ptr, nbytes, "DeviceToDevice", stream.handle)
