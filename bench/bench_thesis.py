"""Seed 002's tables (the plate-reading thesis) on this CPU: ONNX Runtime vs OpenVINO, four recipes.

Table 1 -- detector and both plate readers x {FP32, FP16, INT8, INT8 accuracy-aware} x {ONNX Runtime,
OpenVINO}: latency mean/std, FPS, model size, task metric and its change vs ONNX Runtime FP32.
ONNX Runtime recipes are ONNX files (``modelops.precision``: FP16, Q/DQ for the CPU, the accuracy-aware
Q/DQ loop); OpenVINO recipes are IRs through NNCF (``modelops.nncf_recipes``). Both accuracy-aware
recipes are judged by the task metric (mAP@[.5:.95], exact match; ``evaluation.task_metric``) on the
held-out data/val frames and calibrated on the sample bag (other frames).

Table 2 -- the plate pipeline end to end (detector -> every plate read by the CTC reader) per backend
and recipe over the sample video's frames: total time, detection ms/frame, reading ms/frame, and
total vs inference-only (the engines' share).

Latency: every variant on the same engine input, 1 compute thread each (the machine is a shared
2-core box), short rounds interleaved across all variants; speed-ups are ratios of 10th percentiles
within this one run, next to the load average and the CPU's instruction sets.

    .venv/bin/python -m bench.bench_thesis [--models detector plate_reader_ctc] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_engines import Recording, interleaved_latency, tasks
from bench.common import machine, target
from trt_perception.inference.onnxruntime_backend import OnnxRuntimeEngine
from trt_perception.io.files import model_size_bytes

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "thesis.json"
TASK_OF = {"detector": "detection", "plate_reader_ctc": "plates", "plate_reader_heads": "plates"}
RECIPES = ("fp32", "fp16", "int8", "int8_accuracy_aware")
BACKENDS = ("onnxruntime", "openvino")
SPEEDUP_TARGET, MAX_REL_LOSS = 2.5, 0.01
TARGET_MODELS = ("detector", "plate_reader_ctc")


def cpu_isa() -> dict[str, bool]:
    """The x86 instruction sets INT8 speed depends on (/proc/cpuinfo flags)."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))
    names = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
    return {n: n in flags for n in names}


def make_variants(
    name: str,
    onnx: Path,
    calib: list[dict[str, np.ndarray]],
    metric: Any,
    work: Path,
    args: argparse.Namespace,
) -> tuple[dict[str, tuple[Path, str]], dict[str, Any]]:
    """(backend/recipe -> (model file, backend)), accuracy-aware reports."""
    from trt_perception.modelops import nncf_recipes as N
    from trt_perception.modelops import precision as P

    def step(label: str) -> Any:
        return lambda s: print(
            f"   {label} step {s.step}: {metric.name} {s.metric:.4f} ({100 * s.relative_drop:+.2f}%), "
            f"{len(s.excluded)} in float",
            flush=True,
        )

    v: dict[str, tuple[Path, str]] = {}
    ort, ov = "onnxruntime", "openvino"
    v[f"{ort}/fp32"] = (onnx, ort)
    v[f"{ort}/fp16"] = (P.to_fp16(onnx, work / f"{name}.fp16.onnx"), ort)
    v[f"{ort}/int8"] = (P.quantize_int8(onnx, work / f"{name}.int8.onnx", calib, target="cpu"), ort)
    metric.backend = ort
    ort_aa = P.quantize_int8_accuracy_aware(
        onnx,
        work / f"{name}.int8_aa.onnx",
        calib,
        metric,
        max_drop=MAX_REL_LOSS,
        higher_is_better=metric.higher_is_better,
        max_steps=args.max_steps,
        target="cpu",
        on_step=step("ORT"),
    )
    v[f"{ort}/int8_accuracy_aware"] = (Path(ort_aa.output), ort)
    v[f"{ov}/fp32"] = (onnx, ov)
    v[f"{ov}/fp16"] = (N.openvino_fp16(onnx, work / f"{name}.ov_fp16.xml"), ov)
    v[f"{ov}/int8"] = (N.openvino_int8(onnx, work / f"{name}.ov_int8.xml", calib), ov)
    ov_aa = N.openvino_int8_accuracy_aware(
        onnx,
        work / f"{name}.ov_int8_aa.xml",
        calib,
        metric.frames,
        metric.of_engine,
        max_drop=MAX_REL_LOSS,
        higher_is_better=metric.higher_is_better,
        max_steps=args.max_steps,
        on_step=step("OpenVINO"),
    )
    v[f"{ov}/int8_accuracy_aware"] = (Path(ov_aa.output), ov)
    reports = {f"{b}/int8_accuracy_aware": r for b, r in ((ort, ort_aa), (ov, ov_aa))}
    return v, {k: {"met": r.met, "steps": [vars(s) for s in r.steps]} for k, r in reports.items()}


def bench_model(task: Any, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from trt_perception.evaluation.task_metric import task_metric

    print(f"== {task.name}", flush=True)
    rec = Recording(OnnxRuntimeEngine(task.onnx))
    stage = task.make_stage(rec)
    for sample in task.calibration_samples():  # the stage's own engine inputs on the sample bag
        stage(sample)
    metric = task_metric(TASK_OF[task.name], ROOT / "data" / "val", args.val_count)
    variants, reports = make_variants(task.name, task.onnx, rec.feeds, metric, work, args)
    values = {}
    for key, (path, backend) in variants.items():
        metric.backend = backend
        values[key] = metric(path)
        print(f"   {key}: {metric.name} {values[key]:.4f}", flush=True)
    paths = {k: p for k, (p, _) in variants.items()}
    backends = {k: b for k, (_, b) in variants.items()}
    latency = interleaved_latency(
        paths, rec.feeds[0], args.rounds, args.min_iters, args.seconds, args.threads, backends
    )
    ref_ms, ref = latency["onnxruntime/fp32"]["p10_ms"], values["onnxruntime/fp32"]
    rows = {}
    for key in variants:
        loss = (ref - values[key]) if metric.higher_is_better else (values[key] - ref)
        rows[key] = {
            "latency": latency[key],
            "metric": values[key],
            "relative_loss": loss / abs(ref) if ref else 0.0,
            "speedup_vs_onnxruntime_fp32": ref_ms / latency[key]["p10_ms"],
            "size_bytes": model_size_bytes(paths[key]),
        }
    return {
        "metric": metric.name,
        "validation_frames": len(metric.frames),
        "calibration_inputs": len(rec.feeds),
        "input": {k: list(v.shape) for k, v in rec.feeds[0].items()},
        "variants": rows,
        "accuracy_aware": reports,
        "_paths": {k: str(p) for k, p in paths.items()},
    }


def pipeline_rows(results: dict[str, Any], frames: int, threads: int) -> dict[str, Any]:
    """Detector -> CTC reader on every plate, per backend and recipe, over the sample video."""
    import cv2

    from trt_perception.metrics.latency import LatencyRecorder
    from trt_perception.pipeline.perception import PerceptionPipeline
    from trt_perception.stages.detector import DetectorConfig
    from trt_perception.stages.plate_reader import PlateReaderConfig

    cap = cv2.VideoCapture(str(ROOT / "data" / "sample_scene.mp4"))
    images = [img for ok, img in iter(cap.read, (False, None)) if ok][:frames]
    cap.release()
    rows = {}
    for key in results["detector"]["_paths"]:
        backend = key.split("/")[0]
        latency = LatencyRecorder(window=100_000)
        pipe = PerceptionPipeline.build(
            DetectorConfig(model=results["detector"]["_paths"][key], backend=backend),
            PlateReaderConfig(
                model=results["plate_reader_ctc"]["_paths"][key], backend=backend, decoder="ctc"
            ),
            latency=latency,
        )
        # one untimed pass: OpenVINO compiles each new reader batch size once (per-shape cache); the
        # table is the steady state, as on a robot after its first minute
        for i, img in enumerate(images):
            pipe(img, i)
        latency.reset()
        start = time.perf_counter()
        for i, img in enumerate(images):
            pipe(img, i)
        total_ms = (time.perf_counter() - start) * 1e3
        rows[key] = _pipeline_row(latency, total_ms, len(images))
        print(f"   pipeline {key}: {rows[key]['total_ms_per_frame']:.2f} ms/frame", flush=True)
    return rows


def _pipeline_row(latency: Any, total_ms: float, frames: int) -> dict[str, float]:
    def per_frame(prefix: str, only: str = "") -> float:
        keys = [k for k in latency.stages() if k.startswith(prefix) and k.endswith(only)]
        return sum(s.mean_ms * s.count for s in map(latency.stats, keys) if s is not None) / frames

    return {
        "frames": frames,
        "total_s": total_ms / 1e3,
        "total_ms_per_frame": total_ms / frames,
        "detection_ms_per_frame": per_frame("detector."),
        "reading_ms_per_frame": per_frame("plate_reader."),
        "inference_only_ms_per_frame": per_frame("detector.", ".inference")
        + per_frame("plate_reader.", ".inference"),
        "plates_read": latency.stats("plate_reader.inference").count
        if latency.stats("plate_reader.inference")
        else 0,
    }


def targets(results: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Per target model: the fastest recipe within 1% loss vs 2.5x; per model: the faster backend."""
    rows, defaults = [], {}
    for model, r in results.items():
        ok = {k: v for k, v in r["variants"].items() if v["relative_loss"] <= MAX_REL_LOSS}
        best = max(ok, key=lambda k: ok[k]["speedup_vs_onnxruntime_fp32"])
        per_backend = {
            b: max(v["speedup_vs_onnxruntime_fp32"] for k, v in ok.items() if k.startswith(b))
            for b in BACKENDS
        }
        defaults[model] = max(per_backend, key=lambda b: per_backend[b])
        if model in TARGET_MODELS:
            v = ok[best]
            rows.append(
                target(
                    f"{model}: fastest CPU recipe within {MAX_REL_LOSS:.0%} loss vs ONNX Runtime FP32",
                    round(v["speedup_vs_onnxruntime_fp32"], 3),
                    ">=",
                    SPEEDUP_TARGET,
                    "x",
                    recipe=best,
                    relative_loss=round(v["relative_loss"], 5),
                )
            )
    return rows, defaults


NAMES = {"fp32": "FP32", "fp16": "FP16", "int8": "INT8", "int8_accuracy_aware": "INT8 accuracy-aware"}


def table(results: dict[str, Any], pipeline: dict[str, Any]) -> str:
    lines = [
        "| model | backend | recipe | mean (ms) | std (ms) | p10 (ms) | FPS | size (MB) | metric | value | change | speed-up (p10) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, r in results.items():
        for key, v in r["variants"].items():
            backend, recipe = key.split("/")
            lat = v["latency"]
            lines.append(
                f"| {model} | {backend} | {NAMES[recipe]} | {lat['mean_ms']:.3f} | {lat['std_ms']:.3f} | "
                f"{lat['p10_ms']:.3f} | {lat['fps']:.0f} | {v['size_bytes'] / 2**20:.2f} | {r['metric']} | "
                f"{v['metric']:.4f} | {-100 * v['relative_loss']:+.2f}% | {v['speedup_vs_onnxruntime_fp32']:.2f}x |"
            )
    if pipeline:
        lines += [
            "",
            "| pipeline (detector + CTC reader) | frames | total (s) | total ms/frame | detection ms/frame | reading ms/frame | inference-only ms/frame |",
            "|---|---|---|---|---|---|---|",
        ]
        for key, p in pipeline.items():
            backend, recipe = key.split("/")
            lines.append(
                f"| {backend} {NAMES[recipe]} | {p['frames']} | {p['total_s']:.2f} | {p['total_ms_per_frame']:.2f} | "
                f"{p['detection_ms_per_frame']:.2f} | {p['reading_ms_per_frame']:.2f} | {p['inference_only_ms_per_frame']:.2f} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", default=list(TASK_OF))
    p.add_argument("--quick", action="store_true", help="fewer samples and rounds (a smoke run)")
    p.add_argument("--val-count", type=int, default=60, help="held-out data/val frames for the metric")
    p.add_argument("--threads", type=int, default=1, help="compute threads per engine (every backend)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-iters", type=int, default=20)
    p.add_argument("--seconds", type=float, default=4.0, help="timing budget per variant (split over rounds)")
    p.add_argument("--max-steps", type=int, default=8, help="accuracy-aware steps at most")
    p.add_argument(
        "--pipeline-frames", type=int, default=150, help="sample-video frames of the pipeline table"
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.quick:
        args.val_count, args.rounds, args.seconds, args.pipeline_frames = 20, 2, 1.0, 30
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization's advice on stderr
    started, load_before = time.monotonic(), os.getloadavg()
    selected, skipped = tasks([m for m in args.models if m in TASK_OF], args.quick)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_thesis_") as tmp:
        for task in selected:
            results[task.name] = bench_model(task, Path(tmp), args)
        pipeline = (
            pipeline_rows(results, args.pipeline_frames, args.threads)
            if {"detector", "plate_reader_ctc"} <= set(results)
            else {}
        )
    for r in results.values():
        r.pop("_paths")
    rows, defaults = targets(results)
    doc = {
        "benchmark": "thesis (seed 002)",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine(), "load_average_at_start": load_before, "cpu_isa": cpu_isa()},
        "openvino": __import__("openvino").__version__,
        "nncf": __import__("nncf").__version__,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "models": results,
        "pipeline": pipeline,
        "targets": rows,
        "cpu_default_backend": defaults,
        "not_measured": skipped,
        "table_markdown": table(results, pipeline),
        "seconds": round(time.monotonic() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, default=float))
    print(doc["table_markdown"])
    for t in rows:
        print(
            f"{t['name']}: {t['recipe']} {t['value']}x, loss {100 * t['relative_loss']:.2f}% -> {'PASS' if t['pass'] else 'FAIL'}"
        )
    print(f"CPU default backend (measured): {defaults}; ISA {doc['machine']['cpu_isa']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
