"""Seed 001's tables (BehaviorMetrics PilotNet brains) -> ``bench/results/brains.json``.

Every PilotNet variant -- precision {FP32, FP16, INT8} x backend {ONNX Runtime, OpenVINO} -- drives
the simulated circuits in closed loop (in-process, ROS-free, ``trt_perception.sim``), scored by
``metrics.behavior.evaluate_run`` against each circuit's reference lap:

* closed-loop table: average speed, position deviation (mean metres and BehaviorMetrics' score),
  brain iteration frequency (simulated Hz), mean inference time, real-time factor (simulated seconds
  per wall second of the loop), lap completed;
* offline table: model size, MSE of (v, w) on held-out simulator samples, inference time.

INT8 is calibrated on other simulator samples than the MSE set (seed 3000 vs 2000).

    .venv/bin/python -m bench.bench_brains [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_engines import interleaved_latency, open_timed, pilotnet_task
from bench.bench_thesis import cpu_isa
from bench.common import machine
from trt_perception.io.files import model_size_bytes
from trt_perception.metrics.behavior import RunRecord, evaluate_run
from trt_perception.sim.circuits import circuit_names, get_circuit, load_reference
from trt_perception.sim.world import Simulation, drive
from trt_perception.stages.pilot import Pilot, PilotConfig

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "brains.json"
MODEL = ROOT / "models" / "pilotnet.onnx"


def variants(work: Path, calib: list[dict[str, np.ndarray]]) -> dict[str, tuple[Path, str]]:
    """name -> (model file, backend): the ONNX recipes on ONNX Runtime, the NNCF IRs on OpenVINO."""
    from trt_perception.modelops import nncf_recipes as N
    from trt_perception.modelops import precision as P

    ort, ov = "onnxruntime", "openvino"
    return {
        f"{ort}/fp32": (MODEL, ort),
        f"{ort}/fp16": (P.to_fp16(MODEL, work / "pilotnet.fp16.onnx"), ort),
        f"{ort}/int8": (P.quantize_int8(MODEL, work / "pilotnet.int8.onnx", calib, target="cpu"), ort),
        f"{ov}/fp32": (MODEL, ov),
        f"{ov}/fp16": (N.openvino_fp16(MODEL, work / "pilotnet.ov_fp16.xml"), ov),
        f"{ov}/int8": (N.openvino_int8(MODEL, work / "pilotnet.ov_int8.xml", calib), ov),
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
        run = RunRecord(
            odom_stamp=tr.t,
            odom_wall=tr.t,
            xy=tr.xy,
            clock_sim=tr.t,
            clock_wall=tr.t,
            cmd_wall=tr.t[:-1],
            cmd=tr.cmd[:-1],
            inference_ms=np.asarray(infer_ms),
        )
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


def table(closed: dict[str, list[dict[str, Any]]], offline: dict[str, dict[str, Any]]) -> str:
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
        "| brain | size (MB) | MSE (v, w) | inference mean (ms) | std (ms) |",
        "|---|---|---|---|---|",
    ]
    for key, o in offline.items():
        lines.append(
            f"| {key} | {o['size_bytes'] / 2**20:.3f} | {o['mse']:.5f} | {o['latency']['mean_ms']:.3f} | "
            f"{o['latency']['std_ms']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short drives and fewer samples (a smoke run)")
    p.add_argument("--max-time", type=float, default=200.0, help="simulated seconds per drive at most")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    started = time.monotonic()
    task = pilotnet_task(ROOT / "models", args.quick)
    calib = [
        {"image": np.ascontiguousarray(img[None].transpose(0, 3, 1, 2).astype(np.float32) / 255.0)}
        for img in task.calibration_samples()
    ]
    closed, offline = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench_brains_") as tmp:
        v = variants(Path(tmp), calib)
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
            mse = task.evaluate(open_timed(path, backend, 1))
            offline[key] = {"size_bytes": model_size_bytes(path), "mse": mse, "latency": latency[key]}
            closed[key] = closed_loop(path, backend, 20.0 if args.quick else args.max_time)
            print(key, json.dumps(offline[key]["mse"]), json.dumps(closed[key]), flush=True)
    doc = {
        "benchmark": "brains (seed 001)",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine(), "cpu_isa": cpu_isa()},
        "closed_loop": closed,
        "offline": offline,
        "table_markdown": table(closed, offline),
        "seconds": round(time.monotonic() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, default=float))
    print(doc["table_markdown"])
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
