"""The NVRTC argmax kernels against numpy on a real GPU (skipped cleanly without CUDA + cuda-python)."""

from __future__ import annotations

import numpy as np
import pytest
from segmentation_standin import bilinear

from trt_perception.vision import cuda_argmax

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
