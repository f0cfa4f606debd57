"""CUDA memory layer on a real GPU: allocate, copy in/out (sync and async), pinned buffers, streams.

Skips without a CUDA binding and a GPU. Also runs without pytest: ``python test/test_cuda_memory.py``
(how it was run on the GPU machine, which has cuda-python but no pytest).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from trt_perception.inference import cuda_memory as cm

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cm.cuda_available(), reason="needs a CUDA binding (cuda-python/pycuda) and a GPU"),
]


def test_device_info() -> None:
    info = cm.device_info(0)
    assert info.name and info.compute_capability[0] >= 5 and info.total_memory > 0
    assert info.sm.startswith("sm_")


def test_sync_roundtrip() -> None:
    src = np.arange(1 << 16, dtype=np.float32).reshape(256, 256)
    buf = cm.DeviceBuffer(src.nbytes)
    cm.copy_htod(buf.ptr, src)
    out = np.empty_like(src)
    cm.copy_dtoh(out, buf.ptr)
    np.testing.assert_array_equal(out, src)
    buf.free()
    assert buf.ptr == 0


def test_async_pinned_roundtrip_and_dtod() -> None:
    stream = cm.Stream()
    host = cm.PinnedBuffer((3, 480, 640), np.float32)
    host.array[:] = np.random.default_rng(0).random(host.array.shape, dtype=np.float32)
    a = cm.DeviceBuffer(host.array.nbytes)
    b = cm.DeviceBuffer(host.array.nbytes)
    cm.copy_htod_async(a.ptr, host.array, stream)
    cm.copy_dtod_async(b.ptr, a.ptr, host.array.nbytes, stream)
    back = cm.PinnedBuffer(host.array.shape, np.float32)
    cm.copy_dtoh_async(back.array, b.ptr, stream)
    stream.synchronize()
    np.testing.assert_array_equal(back.array, host.array)
    stream.close()


def test_memset_and_grow() -> None:
    buf = cm.DeviceBuffer(1024)
    assert not buf.ensure(512)  # smaller: same pointer
    assert buf.ensure(1 << 20)  # larger: reallocated
    buf.memset(0)
    out = np.ones(1 << 18, np.float32)
    cm.copy_dtoh(out, buf.ptr)
    assert not out.any()


def test_pinned_resize_reuses_memory() -> None:
    pinned = cm.PinnedBuffer((4, 4), np.uint8)
    ptr = pinned.ptr
    view = pinned.resize((2, 8))
    assert pinned.ptr == ptr and view.shape == (2, 8)
    pinned.resize((64, 64))
    assert pinned.array.shape == (64, 64) and pinned.capacity >= 64 * 64


def test_async_copy_bandwidth_is_plausible() -> None:
    """Pinned async copies of 64 MB each way should clear 1 GB/s on any discrete or Jetson GPU."""
    stream = cm.Stream()
    host = cm.PinnedBuffer((16 << 20,), np.float32)
    dev = cm.DeviceBuffer(host.array.nbytes)
    cm.copy_htod_async(dev.ptr, host.array, stream)
    stream.synchronize()
    start = time.perf_counter()
    for _ in range(5):
        cm.copy_htod_async(dev.ptr, host.array, stream)
        cm.copy_dtoh_async(host.array, dev.ptr, stream)
    stream.synchronize()
    gbps = 10 * host.array.nbytes / (time.perf_counter() - start) / 1e9
    print(f"{cm.implementation()} pinned async H2D+D2H: {gbps:.1f} GB/s on {cm.device_info().name}")
    assert gbps > 1.0


if __name__ == "__main__":
    if not cm.cuda_available():
        print("SKIP: no CUDA binding or GPU")
        sys.exit(0)
    failed = 0
    for name, fn in sorted(globals().items()):
        if name.startswith("test_") and callable(fn):
            try:
                fn()
                print(f"PASSED {name}")
            except Exception as exc:
                failed += 1
                print(f"FAILED {name}: {type(exc).__name__}: {exc}")
    print(f"{'FAILED' if failed else 'OK'}: {failed} failed, implementation {cm.implementation()}")
    sys.exit(1 if failed else 0)
