"""Seed 001's tables (BehaviorMetrics PilotNet brains) -> ``bench/results/brains.json``.

Every PilotNet variant -- precision {FP32, FP16, INT8, INT8 accuracy-aware} x backend {ONNX Runtime,
OpenVINO} -- drives the simulated circuits in closed loop (in-process, ROS-free, ``trt_perception.sim``),
scored by ``metrics.behavior.evaluate_run`` against each circuit's reference lap:

* closed-loop table: average speed, position deviation (mean metres and BehaviorMetrics' score),
  brain iteration frequency (simulated Hz), mean inference time, real-time factor (simulated seconds
  per wall second of the loop), lap completed;
* offline table: model size, MSE of (v, w) (the ``Pilot`` stage's m/s and rad/s against the expert's
  recorded commands, ``evaluation.task_metric.driving_metric``) on held-out simulator views, inference time;
* accuracy-aware recipes: ONNX Runtime Q/DQ (``precision.quantize_int8_accuracy_aware``) and NNCF
  (``nncf_recipes.openvino_int8_accuracy_aware``), both judged by that MSE (<= 1 % relative rise):
  the layers they kept in float and the MSE before (FP32) and after.

Three disjoint simulator draws (``tools.train_pilotnet.collect`` seeds): INT8 calibration (3000), the
accuracy-aware recipes' validation (4000) and the offline table's test views (2000), so neither a
calibration nor a recipe is scored on the views it was tuned on.

    .venv/bin/python -m bench.bench_brains [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_engines import interleaved_latency, open_timed
from bench.bench_thesis import cpu_isa
from bench.common import machine
from tools.train_pilotnet import collect
from trt_perception.evaluation.task_metric import TaskMetric, driving_metric
from trt_perception.evaluation.tasks import EvalConfig
from trt_perception.io.files import model_size_bytes
from trt_perception.metrics.behavior import evaluate_run, simulated_run
from trt_perception.modelops.precision import AccuracyAwareReport
from trt_perception.sim.circuits import circuit_names, get_circuit, load_reference
from trt_perception.sim.world import Simulation, drive
from trt_perception.stages.pilot import Pilot, PilotConfig

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "brains.json"
MODEL = ROOT / "models" / "pilotnet.onnx"
MAX_REL_RISE = 0.01  # accuracy-aware limit: MSE at most 1 % above FP32's
ORT, OV = "onnxruntime", "openvino"


def variants(
    work: Path, calib: list[dict[str, np.ndarray]], val: TaskMetric
) -> tuple[dict[str, tuple[Path, str]], dict[str, dict[str, Any]]]:
    """(name -> (model file, backend): the ONNX recipes on ONNX Runtime, the NNCF IRs on OpenVINO),
    and each accuracy-aware recipe's record (layers in float, validation MSE before and after)."""
    import onnx

    from trt_perception.modelops import nncf_recipes as N
    from trt_perception.modelops import precision as P

    def step(label: str) -> Any:
        return lambda s: print(
            f"   {label} step {s.step}: {val.name} {s.metric:.4f} ({100 * s.relative_drop:+.2f}%), "
            f"{len(s.excluded)} reverted to float",
            flush=True,
        )

    v = {
        f"{ORT}/fp32": (MODEL, ORT),
        f"{ORT}/fp16": (P.to_fp16(MODEL, work / "pilotnet.fp16.onnx"), ORT),
        f"{ORT}/int8": (P.quantize_int8(MODEL, work / "pilotnet.int8.onnx", calib, target="cpu"), ORT),
    }
    ort_aa = P.quantize_int8_accuracy_aware(
        MODEL,
        work / "pilotnet.int8_aa.onnx",
        calib,
        dataclasses.replace(val, backend=ORT),
        max_drop=MAX_REL_RISE,
        higher_is_better=False,
        target="cpu",
        on_step=step("ORT"),
    )
    v[f"{ORT}/int8_accuracy_aware"] = (Path(ort_aa.output), ORT)
    v[f"{OV}/fp32"] = (MODEL, OV)
    v[f"{OV}/fp16"] = (N.openvino_fp16(MODEL, work / "pilotnet.ov_fp16.xml"), OV)
    v[f"{OV}/int8"] = (N.openvino_int8(MODEL, work / "pilotnet.ov_int8.xml", calib), OV)
    ov_aa = N.openvino_int8_accuracy_aware(
        MODEL,
        work / "pilotnet.ov_int8_aa.xml",
        calib,
        val.frames,
        dataclasses.replace(val, backend=OV).of_engine,
        max_drop=MAX_REL_RISE,
        higher_is_better=False,
        on_step=step("OpenVINO"),
    )
    v[f"{OV}/int8_accuracy_aware"] = (Path(ov_aa.output), OV)
    fp32 = onnx.load(str(MODEL))
    # the ORT recipe keeps the image stem and the output tail in float before any search (quantize_int8)
    stem = P.stem_nodes(fp32)
    fixed = stem + [n for n in P.tail_nodes(fp32) if n not in stem]
    chosen = ort_aa.steps[-1] if ort_aa.met else min(ort_aa.steps, key=lambda s: s.drop)
    records = {
        f"{ORT}/int8_accuracy_aware": _record(ort_aa, fixed, chosen.excluded, chosen.metric),
        # NNCF quantizes every Conv/MatMul input (empty ignored scope); ranking: what it left in float
        f"{OV}/int8_accuracy_aware": _record(
            ov_aa, [], [n for n, _ in ov_aa.ranking], ov_aa.steps[-1].metric if ov_aa.steps else float("nan")
        ),
    }
    return v, records


def _record(
    report: AccuracyAwareReport, fixed: list[str], searched: list[str], after: float
) -> dict[str, Any]:
    before = report.reference_metric
    return {
        "met": report.met,
        "in_float_by_recipe": fixed,
        "in_float_by_search": list(searched),
        "validation_mse_fp32": before,
        "validation_mse_after": after,
        "relative_change": (after - before) / before if before else float("nan"),
        "steps": [vars(s) for s in report.steps],
    }


def closed_loop(path: Path, backend: str, max_time: float) -> list[dict[str, Any]]:
    pilot = Pilot(PilotConfig(model=str(path)), engine=open_timed(path, backend, 1))
    infer_ms: list[float] = []

    def brain(img: np.ndarray) -> tuple[float, float]:
        cmd = pilot(img)
        infer_ms.append(pilot.last_inference_ms)
        return cmd.v, cmd.w

    rows = []
    for name in circuit_names():
        infer_ms.clear()
        tr = drive(Simulation(get_circuit(name)), brain, max_time=max_time, dt=0.05)
        run = simulated_run(tr.t, tr.xy, tr.cmd, np.asarray(infer_ms))
        r = evaluate_run(run, load_reference(name))
        rows.append(
            {
                "circuit": name,
                "average_speed_mps": r.average_speed_mps,
                "position_deviation_mean_m": r.position_deviation_mean_m,
                "position_deviation_bm_score": r.position_deviation_bm_score,
                "brain_iteration_frequency_sim_hz": r.brain_iteration_frequency_sim_hz,
                "mean_inference_time_ms": float(np.mean(infer_ms)),
                # the loop's own speed: simulated seconds per wall second (renderer + brain + physics)
                "real_time_factor": float(tr.t[-1] / tr.wall_s) if tr.wall_s > 0 else None,
                "lap_completed": r.lap_completed,
                "percentage_completed": r.percentage_completed,
            }
        )
    return rows


def _lap(r: dict[str, Any]) -> str:
    return "yes" if r["lap_completed"] else f"no ({r['percentage_completed']:.0f}%)"


def table(
    closed: dict[str, list[dict[str, Any]]], offline: dict[str, dict[str, Any]], aa: dict[str, dict[str, Any]]
) -> str:
    lines = [
        "| brain | circuit | avg speed (m/s) | deviation (m) | BM score | brain Hz (sim) | inference (ms) | RTF | lap |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, rows in closed.items():
        for r in rows:
            lines.append(
                f"| {key} | {r['circuit']} | {r['average_speed_mps']:.2f} | {r['position_deviation_mean_m']:.3f} | "
                f"{r['position_deviation_bm_score']:.1f} | {r['brain_iteration_frequency_sim_hz'] or 0:.1f} | "
                f"{r['mean_inference_time_ms']:.3f} | {r['real_time_factor'] or 0:.1f} | "
                f"{_lap(r)} |"
            )
    lines += [
        "",
        "| brain | size (MB) | MSE (v, w) | MSE v | MSE w | inference mean (ms) | std (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, o in offline.items():
        lines.append(
            f"| {key} | {o['size_bytes'] / 2**20:.3f} | {o['mse']:.4f} | {o['mse_v']:.4f} | {o['mse_w']:.5f} | "
            f"{o['latency']['mean_ms']:.3f} | {o['latency']['std_ms']:.3f} |"
        )
    lines += [
        "",
        "MSE in (m/s)² and (rad/s)²: the Pilot stage's commands against the expert's, held-out test views.",
        "",
        "| recipe | in float (recipe) | in float (search) | validation MSE FP32 | after | change | limit |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, r in aa.items():
        lines.append(
            f"| {key} | {', '.join(r['in_float_by_recipe']) or 'none'} | {', '.join(r['in_float_by_search']) or 'none'} | "
            f"{r['validation_mse_fp32']:.4f} | {r['validation_mse_after']:.4f} | {100 * r['relative_change']:+.2f} % | "
            f"{'met' if r['met'] else 'NOT met'} |"
        )
    return "\n".join(lines)


def driving_views(seed: int, poses: int, seconds: float, count: int = 0) -> TaskMetric:
    views, commands = collect(seed, poses, seconds)
    views, commands = (views[:count], commands[:count]) if count else (views, commands)
    return driving_metric(views, commands, f"{len(views)} simulator views (seed {seed})")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short drives and fewer samples (a smoke run)")
    p.add_argument("--max-time", type=float, default=200.0, help="simulated seconds per drive at most")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    started = time.monotonic()
    test = driving_views(2000, 10 if args.quick else 30, 5.0 if args.quick else 10.0)
    val = driving_views(4000, 10 if args.quick else 20, 5.0 if args.quick else 8.0)
    cal = driving_views(3000, 5, 4.0, count=64)
    # the deployed stage's own encode of each calibration view (what quantize does)
    calib = cal.task.calibration_feeds(EvalConfig("calibration", MODEL, options=cal.options), cal.frames)
    closed, offline = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench_brains_") as tmp:
        v, aa = variants(Path(tmp), calib, val)
        latency = interleaved_latency(
            {k: path for k, (path, _) in v.items()},
            calib[0],
            3 if args.quick else 5,
            20,
            1.0 if args.quick else 4.0,
            1,
            {k: b for k, (_, b) in v.items()},
        )
        for key, (path, backend) in v.items():
            scores = dataclasses.replace(test, backend=backend).scores(path)
            offline[key] = {
                "size_bytes": model_size_bytes(path),
                "mse": scores["MSE"],
                "mse_v": scores["MSE[v]"],
                "mse_w": scores["MSE[w]"],
                "latency": latency[key],
            }
            closed[key] = closed_loop(path, backend, 20.0 if args.quick else args.max_time)
            print(key, json.dumps(offline[key]["mse"]), json.dumps(closed[key]), flush=True)
    doc = {
        "benchmark": "brains (seed 001)",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine(), "cpu_isa": cpu_isa()},
        "views": {"test": len(test.frames), "validation": len(val.frames), "calibration": len(calib)},
        "closed_loop": closed,
        "offline": offline,
        "accuracy_aware": aa,
        "table_markdown": table(closed, offline, aa),
        "seconds": round(time.monotonic() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, default=float))
    print(doc["table_markdown"])
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
