"""Run TensorRTEngine against the CuPy-backed TensorRT stand-in on a GPU (no TensorRT needed):

    PYTHONPATH=. python3 test/gpu_trt_standin/smoke.py
    TRT_PERCEPTION_TENSORRT=tensorrt_rtx PYTHONPATH=. python3 test/gpu_trt_standin/smoke.py

Checks buffers, pinned copies, the stream, device outputs and error messages; prints PASS/FAIL.
The second line runs the TensorRT-RTX flavour (``tensorrt_rtx/`` stand-in) and adds its engine validity
check (a clear error for an unsupported GPU) and the persisted runtime cache.
Not collected by pytest: the stand-in would shadow a real TensorRT.
"""

from __future__ import annotations

import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from trt_perception.inference import tensorrt_backend as tb
from trt_perception.inference.engine import EngineError
from trt_perception.inference.factory import open_engine, tensorrt_available

results: list[bool] = []


def check(name: str, fn: Callable[[], None]) -> None:
    try:
        fn()
        print("PASS", name)
        results.append(True)
    except Exception:
        print("FAIL", name)
        traceback.print_exc()
        results.append(False)


def expect_error(fn: Callable[[], object], *fragments: str) -> None:
    try:
        fn()
    except EngineError as exc:
        assert all(f in str(exc) for f in fragments), exc
        print("   ", exc)
        return
    raise AssertionError("no EngineError")


def main() -> int:
    tmp = Path(tempfile.mkdtemp())
    plan, bad = tmp / "fake.engine", tmp / "bad.engine"
    plan.write_bytes(b"FAKEPLAN")
    bad.write_bytes(b"garbage")
    assert tensorrt_available()
    eng = open_engine(plan)
    print(eng.inputs, eng.outputs, eng.profile_range("x"))  # type: ignore[attr-defined]
    assert eng.batch_limits() == (1, 4)

    def shapes_and_values() -> None:
        for shape in [(1, 3, 32, 32), (2, 3, 16, 48), (1, 3, 32, 32), (4, 3, 64, 64)]:
            x = np.random.default_rng(0).random(shape, dtype=np.float32)
            out = eng.infer({"x": x})
            np.testing.assert_allclose(out["y"], 2 * x + 1, rtol=1e-6)
            np.testing.assert_allclose(out["s"], x.sum(axis=1), rtol=1e-5)
            assert eng.last_latency_ms > 0

    def reuse() -> None:
        x = np.ones((1, 3, 32, 32), np.float32)
        assert eng.infer({"x": x})["y"].ctypes.data == eng.infer({"x": x * 2})["y"].ctypes.data

    def device() -> None:
        import cupy

        x = np.random.default_rng(1).random((2, 3, 16, 16), dtype=np.float32)
        dev = eng.infer({"x": x}, outputs_on_device=True)
        with cupy.cuda.ExternalStream(eng.stream_handle):  # type: ignore[attr-defined]
            y = dev["y"].cupy()
            am = cupy.argmax(y, axis=1).astype(cupy.uint8)
        eng.synchronize()  # type: ignore[attr-defined]
        np.testing.assert_allclose(cupy.asnumpy(y), 2 * x + 1, rtol=1e-6)
        assert am.shape == (2, 16, 16)
        out = eng.infer({"x": dev["y"]})  # a device tensor as the next feed (device-to-device copy)
        np.testing.assert_allclose(out["y"], 2 * (2 * x + 1) + 1, rtol=1e-5)

    def warm_close() -> None:
        eng.warmup(2, {"x": (1, 3, 32, 32)})
        eng.close()
        eng.close()
        expect_error(lambda: eng.infer({"x": np.zeros((1, 3, 32, 32), np.float32)}), "closed")

    check("infer matches across dynamic shapes", shapes_and_values)
    check("pinned output buffers reused per shape", reuse)
    check(
        "shape outside profile names tensor/min/max",
        lambda: expect_error(
            lambda: eng.infer({"x": np.zeros((8, 3, 32, 32), np.float32)}),
            "input 'x' shape (8, 3, 32, 32) is outside the optimization profile",
            "max (4, 3, 64, 64)",
        ),
    )
    check(
        "dtype mismatch",
        lambda: expect_error(
            lambda: eng.infer({"x": np.zeros((1, 3, 32, 32), np.float64)}),
            "expects dtype float32 but got float64",
        ),
    )
    check("infer(outputs_on_device=True) + DeviceTensor.cupy + device feed", device)
    if tb.FLAVOUR == "tensorrt_rtx":
        check("corrupt plan", lambda: expect_error(lambda: open_engine(bad), "not a TensorRT-RTX engine"))
        sm90 = tmp / "hopper.engine"
        sm90.write_bytes(b"FAKEPLAN-SM90")
        check(
            "unsupported GPU refused before loading",
            lambda: expect_error(
                lambda: open_engine(sm90), "cannot run with TensorRT-RTX", "compute capability", "Hopper"
            ),
        )
    else:
        check(
            "corrupt plan",
            lambda: expect_error(
                lambda: open_engine(bad), "cannot deserialize TensorRT engine", "magic tag mismatch"
            ),
        )
    check("warmup, close twice, infer after close", warm_close)
    if tb.FLAVOUR == "tensorrt_rtx":

        def runtime_cache() -> None:
            cache = plan.with_name(plan.name + ".runtime_cache")
            assert cache.read_bytes().startswith(b"RTCACHE:kernels"), "close() did not persist the cache"
            again = tb.TensorRTEngine(plan)
            assert again._runtime_cache is not None and again._runtime_cache.loaded
            again.close()
            cache.write_bytes(b"stale")  # another GPU's cache: ignored, replaced on close
            third = tb.TensorRTEngine(plan)
            assert third._runtime_cache is not None and not third._runtime_cache.loaded
            third.close()
            assert cache.read_bytes().startswith(b"RTCACHE:")

        check("runtime cache persisted, reloaded, a foreign one replaced", runtime_cache)
    print("OK" if all(results) else "FAILED", sum(results), "/", len(results))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
