# ruff: noqa: B023  (each timed lambda runs and is dropped inside its own loop iteration)
"""GPU half of the multi-camera benchmark: the detector's batching curve on a CUDA machine.

    python3 -m bench.gpu_multicamera_device --out $OUT/multicamera_gpu.json

``models/detector.onnx`` (dynamic batch) replayed in PyTorch on the GPU (``gpu_segmentation_device``'s
replay: cuDNN, FP32 and FP16, each captured as a CUDA graph so that no Python or launch overhead is
counted, closer to a TensorRT enqueue), timed with CUDA events at batch 1..8, and checked against ONNX
Runtime CPU at batch 2. TensorRT is not installed there, so this stands in for it: an upper bound on
a TensorRT engine's time on the same GPU. ``bench/bench_multicamera.py`` merges this file into
``bench/results/multicamera.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from bench.gpu_segmentation_device import graphed, time_gpu, torch_replay

MODEL = Path(__file__).resolve().parents[1] / "models" / "detector.onnx"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    import onnxruntime as ort

    torch.backends.cudnn.benchmark = True
    x = np.random.default_rng(0).random((8, 3, 288, 512), dtype=np.float32)
    ref = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"]).run(None, {"images": x[:2]})[0]
    result: dict = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": "models/detector.onnx, PyTorch replay (cuDNN), CUDA graph per batch size",
    }
    for half in (False, True):
        run = torch_replay(MODEL, half=half)
        name = "fp16" if half else "fp32"
        with torch.no_grad():
            got = run(torch.from_numpy(x[:2]).cuda().to(torch.float16 if half else torch.float32))
        result[f"{name}_max_abs_diff_vs_ort_cpu_batch2"] = float(
            np.abs(got.float().cpu().numpy() - ref).max()
        )
        curve = {}
        for b in range(1, 9):
            xb = torch.from_numpy(x[:b]).cuda().to(torch.float16 if half else torch.float32)
            t = time_gpu(graphed(lambda: run(xb)), iters=100, warmup=10)
            curve[str(b)] = {
                "median_ms": round(t["median_ms"], 4),
                "per_frame_ms": round(t["median_ms"] / b, 4),
            }
        result[f"curve_{name}"] = curve
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
