"""Class argmax (and bilinear upsample + argmax) on device logits, compiled at run time with NVRTC.

For the TensorRT backend: the engine leaves ``[N, C, h, w]`` logits on the GPU and only the uint8 mask
``[N, H, W]`` comes back to the host (C times fewer bytes, no host argmax). The kernels are compiled
once per (class count, dtype) with the class count baked in, so the class loop unrolls completely and
every class load of a pixel is in flight at once; that is what keeps a memory-bound kernel near DRAM
bandwidth.

* ``argmax``: one thread per 4 adjacent pixels, each class read as one 16-byte (float32) or 8-byte
  (float16) load, so a warp reads 512 contiguous bytes per class; a scalar kernel handles sizes that
  are not multiples of 4 or unaligned pointers.
* ``upsample_argmax``: half-pixel bilinear interpolation (ONNX Resize ``half_pixel``, OpenCV
  ``INTER_LINEAR``) fused with the argmax, one thread per output pixel: the upsampled ``C``-channel
  logits never exist in memory.

Ties go to the lowest class index, like ``numpy.argmax``. NaN logits never win (numpy would pick
them). Uses cuda-python (``cuda.bindings``: NVRTC and the driver API) in the primary context, the one
the CUDA runtime, TensorRT and ``inference.cuda_memory`` use; pointers and streams are plain integers.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from . import cuda_memory as cm

_SOURCE = r"""
#if LOGITS_HALF
typedef unsigned short scalar_t;
typedef uint2 vec_t;
__device__ __forceinline__ float h2f(unsigned short h) {
    float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f;
}
__device__ __forceinline__ float load1(const scalar_t* p) { return h2f(__ldg(p)); }
__device__ __forceinline__ float4 load4(const vec_t* p) {
    uint2 u = __ldg(p);
    return make_float4(h2f((unsigned short)(u.x & 0xffff)), h2f((unsigned short)(u.x >> 16)),
                       h2f((unsigned short)(u.y & 0xffff)), h2f((unsigned short)(u.y >> 16)));
}
#else
typedef float scalar_t;
typedef float4 vec_t;
__device__ __forceinline__ float load1(const scalar_t* p) { return __ldg(p); }
__device__ __forceinline__ float4 load4(const vec_t* p) { return __ldg(p); }
#endif

// Four pixels per thread: logits [N, C, HW], HW % 4 == 0, 16-byte aligned; mask [N, HW] as uchar4.
extern "C" __global__ void argmax_vec4(const vec_t* __restrict__ x, uchar4* __restrict__ out,
                                       long long hw4, long long total4) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total4) return;
    long long n = i / hw4;
    const vec_t* p = x + n * (NUM_CLASSES - 1) * hw4 + i;  // == x + n*C*hw4 + (i - n*hw4)
    float4 best = load4(p);
    unsigned int b0 = 0, b1 = 0, b2 = 0, b3 = 0;
#pragma unroll UNROLL
    for (int c = 1; c < NUM_CLASSES; ++c) {
        float4 v = load4(p + c * hw4);
        if (v.x > best.x) { best.x = v.x; b0 = c; }
        if (v.y > best.y) { best.y = v.y; b1 = c; }
        if (v.z > best.z) { best.z = v.z; b2 = c; }
        if (v.w > best.w) { best.w = v.w; b3 = c; }
    }
    out[i] = make_uchar4(b0, b1, b2, b3);
}

// One pixel per thread, any size or alignment.
extern "C" __global__ void argmax_scalar(const scalar_t* __restrict__ x, unsigned char* __restrict__ out,
                                         long long hw, long long total) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    long long n = i / hw;
    const scalar_t* p = x + n * (NUM_CLASSES - 1) * hw + i;
    float best = load1(p);
    unsigned int b = 0;
#pragma unroll UNROLL
    for (int c = 1; c < NUM_CLASSES; ++c) {
        float v = load1(p + c * hw);
        if (v > best) { best = v; b = c; }
    }
    out[i] = (unsigned char)b;
}

// Bilinear (half-pixel, edge-clamped) upsample of [N, C, h, w] to [H, W] fused with the argmax.
extern "C" __global__ void upsample_argmax(const scalar_t* __restrict__ x, unsigned char* __restrict__ out,
                                           int h, int w, int H, int W, int batch) {
    int ox = blockIdx.x * blockDim.x + threadIdx.x;
    int oy = blockIdx.y * blockDim.y + threadIdx.y;
    int n = blockIdx.z;
    if (ox >= W || oy >= H || n >= batch) return;
    float sy = fminf(fmaxf((oy + 0.5f) * ((float)h / H) - 0.5f, 0.f), (float)(h - 1));
    float sx = fminf(fmaxf((ox + 0.5f) * ((float)w / W) - 0.5f, 0.f), (float)(w - 1));
    int y0 = (int)sy, x0 = (int)sx;
    int y1 = min(y0 + 1, h - 1), x1 = min(x0 + 1, w - 1);
    float fy = sy - y0, fx = sx - x0;
    float w00 = (1.f - fy) * (1.f - fx), w01 = (1.f - fy) * fx, w10 = fy * (1.f - fx), w11 = fy * fx;
    long long plane = (long long)h * w;
    const scalar_t* p = x + (long long)n * NUM_CLASSES * plane;
    int o00 = y0 * w + x0, o01 = y0 * w + x1, o10 = y1 * w + x0, o11 = y1 * w + x1;
    float best = -3.402823466e38f;
    unsigned int b = 0;
#pragma unroll UNROLL
    for (int c = 0; c < NUM_CLASSES; ++c) {
        const scalar_t* q = p + c * plane;
        float v = w00 * load1(q + o00) + w01 * load1(q + o01) + w10 * load1(q + o10) + w11 * load1(q + o11);
        if (v > best) { best = v; b = c; }
    }
    out[((long long)n * H + oy) * W + ox] = (unsigned char)b;
}
"""

_BLOCK = 256
_BLOCK_2D = (32, 8)


class CudaArgmaxError(RuntimeError):
    """CUDA/NVRTC unavailable, a compile or launch failure, or logits the kernels cannot take."""


@dataclass(frozen=True)
class KernelInfo:
    num_classes: int
    dtype: str
    arch: str
    nvrtc_version: tuple[int, int]


def _bindings() -> tuple[Any, Any]:
    """(driver, nvrtc) from cuda-python: the ``cuda.bindings`` layout (12.6+) or the older one."""
    errors = []
    for drv_name, rtc_name in (("cuda.bindings.driver", "cuda.bindings.nvrtc"), ("cuda.cuda", "cuda.nvrtc")):
        try:
            return importlib.import_module(drv_name), importlib.import_module(rtc_name)
        except ImportError as exc:
            errors.append(f"{drv_name}: {exc}")
    raise CudaArgmaxError("cuda-python is not installed (pip install cuda-bindings); " + "; ".join(errors))


def _check(call: str, result: Any) -> Any:
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise CudaArgmaxError(f"{call} failed: {getattr(err, 'name', err)}")
    return values[0] if len(values) == 1 else tuple(values)


def cuda_available() -> bool:
    """A CUDA driver, a GPU and NVRTC are all usable from cuda-python."""
    try:
        drv, rtc = _bindings()
        _check("cuInit", drv.cuInit(0))
        _check("nvrtcVersion", rtc.nvrtcVersion())
        return int(_check("cuDeviceGetCount", drv.cuDeviceGetCount())) > 0
    except Exception:
        return False


@cache
def _primary_context(device: int) -> Any:
    drv, _ = _bindings()
    _check("cuInit", drv.cuInit(0))
    dev = _check("cuDeviceGet", drv.cuDeviceGet(device))
    return dev, _check("cuDevicePrimaryCtxRetain", drv.cuDevicePrimaryCtxRetain(dev))


def _compile(num_classes: int, half: bool, device: int) -> tuple[bytes, str, bool, tuple[int, int]]:
    """NVRTC -> CUBIN for this GPU's arch (or PTX for the newest arch NVRTC knows, JIT-ed by the driver)."""
    drv, rtc = _bindings()
    dev, _ = _primary_context(device)
    attr = drv.CUdevice_attribute
    major = int(
        _check(
            "cuDeviceGetAttribute",
            drv.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev),
        )
    )
    minor = int(
        _check(
            "cuDeviceGetAttribute",
            drv.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev),
        )
    )
    cc = major * 10 + minor
    supported = [int(a) for a in _check("nvrtcGetSupportedArchs", rtc.nvrtcGetSupportedArchs())]
    as_cubin = cc in supported
    arch = f"sm_{cc}" if as_cubin else f"compute_{max(a for a in supported if a <= cc)}"
    # Full unroll keeps every class load of a pixel in flight; past 32 classes registers run out.
    unroll = num_classes if num_classes <= 32 else 8
    opts = [
        f"-arch={arch}".encode(),
        b"--use_fast_math",
        f"-DNUM_CLASSES={num_classes}".encode(),
        f"-DLOGITS_HALF={int(half)}".encode(),
    ]
    prog = _check(
        "nvrtcCreateProgram",
        rtc.nvrtcCreateProgram(_SOURCE.replace("UNROLL", str(unroll)).encode(), b"argmax.cu", 0, [], []),
    )
    try:
        err = rtc.nvrtcCompileProgram(prog, len(opts), opts)[0]
        if int(err) != 0:
            size = _check("nvrtcGetProgramLogSize", rtc.nvrtcGetProgramLogSize(prog))
            log = b" " * size
            rtc.nvrtcGetProgramLog(prog, log)
            raise CudaArgmaxError(f"NVRTC failed for {arch}: {log.decode(errors='replace')}")
        if as_cubin:
            size = _check("nvrtcGetCUBINSize", rtc.nvrtcGetCUBINSize(prog))
            image = b" " * size
            _check("nvrtcGetCUBIN", rtc.nvrtcGetCUBIN(prog, image))
        else:
            size = _check("nvrtcGetPTXSize", rtc.nvrtcGetPTXSize(prog))
            image = b" " * size
            _check("nvrtcGetPTX", rtc.nvrtcGetPTX(prog, image))
    finally:
        rtc.nvrtcDestroyProgram(prog)
    version = tuple(int(v) for v in _check("nvrtcVersion", rtc.nvrtcVersion()))
    return image, arch, as_cubin, (version[0], version[1])


class _Args:
    """Kernel arguments packed for ``cuLaunchKernel``: an array of pointers to the values."""

    def __init__(self, *values: tuple[Any, type]) -> None:
        self._values: list[np.ndarray] = [np.array([v], dtype=t) for v, t in values]
        self._ptrs = np.array([a.ctypes.data for a in self._values], dtype=np.uintp)

    @property
    def address(self) -> int:
        return int(self._ptrs.ctypes.data)


class CudaArgmax:
    """Kernels for one class count and logits dtype (float32 or float16), compiled at construction."""

    def __init__(self, num_classes: int, dtype: str | np.dtype = "float32", device: int = 0) -> None:
        if not 1 <= num_classes <= 256:
            raise CudaArgmaxError(f"a uint8 mask holds 1..256 classes, got {num_classes}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float16)):
            raise CudaArgmaxError(f"logits must be float32 or float16, got {self.dtype}")
        self.num_classes = num_classes
        self.device = device
        drv, _ = _bindings()
        self._drv = drv
        _, self._ctx = _primary_context(device)
        self._make_current()
        image, arch, _, version = _compile(num_classes, self.dtype == np.float16, device)
        self._image = np.frombuffer(image, np.uint8).copy()  # NUL-terminated for PTX; kept alive
        self._module = _check("cuModuleLoadData", drv.cuModuleLoadData(self._image.ctypes.data))
        self._fn = {
            name: _check("cuModuleGetFunction", drv.cuModuleGetFunction(self._module, name.encode()))
            for name in ("argmax_vec4", "argmax_scalar", "upsample_argmax")
        }
        self.info = KernelInfo(num_classes, self.dtype.name, arch, version)

    def _make_current(self) -> None:
        _check("cuCtxSetCurrent", self._drv.cuCtxSetCurrent(self._ctx))

    def _launch(
        self, name: str, grid: tuple[int, int, int], block: tuple[int, int, int], args: _Args, stream: int
    ) -> None:
        _check(
            f"cuLaunchKernel({name})",
            self._drv.cuLaunchKernel(
                self._fn[name], *grid, *block, 0, self._drv.CUstream(stream), args.address, 0
            ),
        )

    def argmax(
        self, logits_ptr: int, batch: int, height: int, width: int, out_ptr: int, stream: int = 0
    ) -> None:
        """Queue ``mask[N, h, w] = argmax_c logits[N, C, h, w]`` on ``stream`` (device pointers)."""
        self._make_current()
        hw = height * width
        vec_bytes = 4 * self.dtype.itemsize
        if hw % 4 == 0 and logits_ptr % vec_bytes == 0 and out_ptr % 4 == 0:
            total4 = batch * hw // 4
            args = _Args((logits_ptr, np.uintp), (out_ptr, np.uintp), (hw // 4, np.int64), (total4, np.int64))
            self._launch("argmax_vec4", ((total4 + _BLOCK - 1) // _BLOCK, 1, 1), (_BLOCK, 1, 1), args, stream)
        else:
            total = batch * hw
            args = _Args((logits_ptr, np.uintp), (out_ptr, np.uintp), (hw, np.int64), (total, np.int64))
            self._launch(
                "argmax_scalar", ((total + _BLOCK - 1) // _BLOCK, 1, 1), (_BLOCK, 1, 1), args, stream
            )

    def upsample_argmax(
        self,
        logits_ptr: int,
        batch: int,
        height: int,
        width: int,
        out_ptr: int,
        out_height: int,
        out_width: int,
        stream: int = 0,
    ) -> None:
        """Queue ``mask[N, H, W] = argmax_c bilinear(logits)[N, c, H, W]`` without materialising it."""
        self._make_current()
        args = _Args(
            (logits_ptr, np.uintp),
            (out_ptr, np.uintp),
            (height, np.int32),
            (width, np.int32),
            (out_height, np.int32),
            (out_width, np.int32),
            (batch, np.int32),
        )
        bx, by = _BLOCK_2D
        grid = ((out_width + bx - 1) // bx, (out_height + by - 1) // by, batch)
        self._launch("upsample_argmax", grid, (bx, by, 1), args, stream)

    def __call__(self, logits: np.ndarray, out_size: tuple[int, int] | None = None) -> np.ndarray:
        """Host convenience (tests, tools): copy ``[N, C, h, w]`` in, run, copy the uint8 mask out."""

        if logits.ndim != 4 or logits.shape[1] != self.num_classes:
            raise CudaArgmaxError(f"logits must be [N, {self.num_classes}, h, w], got {logits.shape}")
        x = np.ascontiguousarray(logits, dtype=self.dtype)
        n, _, h, w = x.shape
        oh, ow = out_size or (h, w)
        mask = np.empty((n, oh, ow), np.uint8)
        src, dst = cm.DeviceBuffer(x.nbytes), cm.DeviceBuffer(mask.nbytes)
        stream = cm.Stream()
        cm.copy_htod(src.ptr, x)
        if out_size is None:
            self.argmax(src.ptr, n, h, w, dst.ptr, stream.handle)
        else:
            self.upsample_argmax(src.ptr, n, h, w, dst.ptr, oh, ow, stream.handle)
        stream.synchronize()
        cm.copy_dtoh(mask, dst.ptr)
        return mask
