"""Plate readers: accuracy and ONNX Runtime CPU latency of the sample readers (and PP-OCRv4 rec).

    .venv/bin/python -m bench.bench_plate_readers          # -> bench/results/plate_readers.json

For each committed reader: exact-match and character accuracy on fresh synthetic reader crops and on
the plates of the sample scenes' held-out set (``data/val``, generated if missing), the engine call's
median latency at batch 1 and 8, and the whole ``PlateReader.read_crops`` (pre-processing + engine +
decoding) per batch of 8. PP-OCRv4 rec (rapidocr wheel, 48 px high, 6625 classes) is timed on the same
crops as a reference for what a general-purpose recognizer costs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import timed  # noqa: E402
from tools.make_samples import val_plate_crops  # noqa: E402
from tools.synth.plates import random_plate_text, reader_crop  # noqa: E402
from trt_perception.inference.factory import open_engine  # noqa: E402
from trt_perception.stages.plate_reader import PlateReader, PlateReaderConfig  # noqa: E402
from trt_perception.vision.text import prepare_text_crops  # noqa: E402

TARGET_EXACT = 0.95
READERS = {"ctc": ROOT / "models/plate_reader_ctc.onnx", "heads": ROOT / "models/plate_reader_heads.onnx"}


def median_ms(fn, iters: int, warmup: int = 5) -> float:  # type: ignore[no-untyped-def]
    return timed(fn, iters, warmup)["median_ms"]


def synthetic_set(n: int, seed: int = 7) -> tuple[list[np.ndarray], list[str]]:
    rng = np.random.default_rng([seed, 2026])
    texts = [random_plate_text(rng) for _ in range(n)]
    return [reader_crop(t, rng) for t in texts], texts


def accuracy(readings: list[tuple[str, float]], texts: list[str]) -> dict:
    exact = float(np.mean([r == t for (r, _), t in zip(readings, texts)]))
    chars = sum(sum(a == b for a, b in zip(r, t)) for (r, _), t in zip(readings, texts))
    return {
        "n": len(texts),
        "exact_match": round(exact, 4),
        "char_accuracy": round(chars / sum(len(t) for t in texts), 4),
        "target_exact_match": TARGET_EXACT,
        "pass": exact >= TARGET_EXACT,
    }


def bench_reader(decoder: str, crops: list[np.ndarray], texts: list[str], iters: int) -> dict:
    reader = PlateReader(PlateReaderConfig(model=str(READERS[decoder]), decoder=decoder, max_batch=32))
    val_crops, val_texts = val_plate_crops(reader)
    engine = reader.engine
    x1 = prepare_text_crops(crops[:1], reader.height, reader.width)
    x8 = prepare_text_crops(crops[:8], reader.height, reader.width)
    return {
        "model": str(READERS[decoder].relative_to(ROOT)),
        "size_mb": round(READERS[decoder].stat().st_size / 2**20, 3),
        "synthetic_crops": accuracy(reader.read_crops(crops), texts),
        "data_val_plates": accuracy(reader.read_crops(val_crops), val_texts),
        "engine_median_ms_batch1": round(median_ms(lambda: engine.infer({"x": x1}), iters), 3),
        "engine_median_ms_batch8": round(median_ms(lambda: engine.infer({"x": x8}), iters), 3),
        "read_crops_median_ms_batch8": round(median_ms(lambda: reader.read_crops(crops[:8]), iters), 3),
    }


def bench_ppocr(crops: list[np.ndarray], iters: int) -> dict | None:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = sorted(Path(next(iter(spec.submodule_search_locations))).glob("models/*PP-OCRv4_rec*.onnx"))[0]
    engine = open_engine(path)
    x1 = prepare_text_crops(crops[:1], 48, 240)
    x8 = prepare_text_crops(crops[:8], 48, 240)
    name = engine.input().name
    return {
        "model": path.name,
        "input": "[N,3,48,240]",
        "engine_median_ms_batch1": round(median_ms(lambda: engine.infer({name: x1}), max(5, iters // 4)), 3),
        "engine_median_ms_batch8": round(median_ms(lambda: engine.infer({name: x8}), max(5, iters // 4)), 3),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500, help="synthetic crops for accuracy")
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/plate_readers.json")
    args = p.parse_args(argv)
    crops, texts = synthetic_set(args.n)
    import onnxruntime

    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__,
            "load_avg_1m": os.getloadavg()[0],
        },
        "readers": {d: bench_reader(d, crops, texts, args.iters) for d in READERS},
        "ppocr_v4_rec_reference": bench_ppocr(crops, args.iters),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
