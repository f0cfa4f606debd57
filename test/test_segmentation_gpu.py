"""The NVRTC argmax kernels against numpy on a real GPU (skipped cleanly without CUDA + cuda-python)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from segmentation_standin import bilinear

from trt_perception.inference import cuda_argmax

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda_argmax.cuda_available(), reason="no CUDA GPU with cuda-python/NVRTC here"),
]


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((1, 19, 64, 128), np.float32),  # vectorised path
        ((2, 19, 37, 53), np.float32),  # scalar path: 37*53 is not a multiple of 4
        ((1, 4, 96, 160), np.float16),
        ((1, 150, 32, 64), np.float32),  # ADE20K-sized class count: partial unroll
    ],
)
def test_argmax_matches_numpy(shape: tuple[int, ...], dtype: type) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=shape).astype(dtype)
    logits[..., :2, :] = 0  # exact ties: lowest index wins, as in numpy
    kernel = cuda_argmax.CudaArgmax(shape[1], dtype)
    np.testing.assert_array_equal(kernel(logits), logits.argmax(axis=1).astype(np.uint8))


def test_upsample_argmax_matches_numpy_bilinear() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(1, 4, 48, 84)).astype(np.float32)
    kernel = cuda_argmax.CudaArgmax(4)
    got = kernel(logits, out_size=(192, 336))[0]
    want = bilinear(logits[0], 192, 336).argmax(axis=0)
    assert (got == want).mean() > 0.999  # float32 on the GPU vs float64 here: near-ties only


def test_rejects_wrong_class_count() -> None:
    kernel = cuda_argmax.CudaArgmax(4)
    with pytest.raises(cuda_argmax.CudaArgmaxError, match=r"\[N, 4, h, w\]"):
        kernel(np.zeros((1, 5, 8, 8), np.float32))


@dataclass(frozen=True)
class _DeviceTensor:  # the fields of tensorrt_backend.DeviceTensor (that module needs TensorRT)
    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype


class _DeviceOutputs:
    """ONNX Runtime behind the TensorRT backend's device interface (``infer(..., outputs_on_device=True)``, ``stream_handle``):
    exercises the stage's ``gpu`` path on a real GPU where TensorRT itself is absent."""

    backend = "tensorrt-like"
    device_outputs = True

    def __init__(self, path: str) -> None:
        from trt_perception.inference import cuda_memory as cm
        from trt_perception.inference.onnxruntime_backend import OnnxRuntimeEngine

        self._ort = OnnxRuntimeEngine(path)
        self._cm = cm
        self._stream = cm.Stream()
        self._buf = cm.DeviceBuffer(1)
        self.path = self._ort.path
        self.inputs, self.outputs, self.metadata = self._ort.inputs, self._ort.outputs, self._ort.metadata
        self.input, self.output = self._ort.input, self._ort.output

    @property
    def stream_handle(self) -> int:
        return self._stream.handle

    def infer(self, feeds, outputs_on_device=False):  # type: ignore[no-untyped-def]
        assert outputs_on_device
        logits = np.ascontiguousarray(self._ort.infer(feeds)["logits"])
        self._buf.ensure(logits.nbytes)
        self._cm.copy_htod(self._buf.ptr, logits)
        return {"logits": _DeviceTensor(self._buf.ptr, logits.shape, logits.dtype)}

    def synchronize(self) -> None:
        self._stream.synchronize()


def test_segmenter_gpu_path_matches_cpu(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import segmentation_standin as standin

    from trt_perception.stages.segmenter import Segmenter, SegmenterConfig

    model = str(standin.build(tmp_path / "seg.onnx"))
    bgr, _ = standin.synthetic_frame(360, 640, seed=4)
    cpu = Segmenter(SegmenterConfig(model, argmax="cpu"))(bgr).mask
    gpu_cfg = SegmenterConfig(model, argmax="gpu")
    gpu = Segmenter(gpu_cfg, engine=_DeviceOutputs(model))(bgr).mask  # type: ignore[arg-type]
    assert gpu.shape == cpu.shape == (360, 640)
    assert (gpu == cpu).mean() > 0.999
