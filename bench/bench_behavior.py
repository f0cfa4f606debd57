"""Driving benchmark -> ``bench/results/behavior.json``.

    .venv/bin/python -m bench.bench_behavior

1. Brain iteration frequency of the sample PilotNet on ONNX Runtime CPU: the ``Pilot`` stage (crop,
   resize to 66x200, RGB/255, inference, un-normalise) on rendered 640x480 frames; iterations per
   second = 1000 / mean ms (target >= 300 Hz; the seeds' best TF-TRT was 99.3 Hz on a GTX 1050).
2. Position deviation for 100k driven poses against 10k reference checkpoints (target <= 100 ms), and
   the percentage-completed walk and the whole ``evaluate_run`` on the same data.
3. Closed-loop laps (in-process, ROS-free) with the sample PilotNet on both circuits, both directions:
   lap time, completion, deviation (metres and BehaviorMetrics' 1000**d score), average speed.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import machine, summary, target, timed
from trt_perception.inference.onnxruntime_backend import OnnxRuntimeEngine
from trt_perception.metrics.behavior import RunRecord, evaluate_run, percentage_completed, position_deviation
from trt_perception.sim.circuits import circuit_names, get_circuit, load_reference
from trt_perception.sim.render import CircuitRenderer
from trt_perception.sim.world import Simulation, drive
from trt_perception.stages.pilot import Pilot, PilotConfig

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "behavior.json"
MODEL = ROOT / "models" / "pilotnet.onnx"
SEED_BEST_TFTRT_HZ = 99.30  # seeds/001: TF-TRT FP16, Montreal, GTX 1050


def brain_frequency(threads: int, frames: list[np.ndarray], repeats: int = 3) -> dict[str, Any]:
    engine = OnnxRuntimeEngine(MODEL, intra_op_threads=threads)
    pilot = Pilot(PilotConfig(model=str(MODEL)), engine=engine)
    for f in frames[:20]:
        pilot(f)
    ms: list[float] = []
    infer_ms: list[float] = []
    for _ in range(repeats):
        for f in frames:
            t = time.perf_counter()
            pilot(f)
            ms.append((time.perf_counter() - t) * 1e3)
            infer_ms.append(pilot.last_inference_ms)
    s = summary(ms)
    return {
        "intra_op_threads": threads,
        "iteration": s,
        "inference": summary(infer_ms),
        "iterations_per_s": 1000.0 / s["mean_ms"],
        # the median is robust to the preemptions of a shared machine; the mean (above) is the target
        "iterations_per_s_from_median": 1000.0 / s["median_ms"],
    }


def deviation_timing() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    a = np.linspace(0, 2 * np.pi, 10_000, endpoint=False)
    reference = np.stack([80 * np.cos(a), 45 * np.sin(a)], axis=1)
    b = np.linspace(0, 2 * np.pi * 1.02, 100_000)
    driven = np.stack([80.3 * np.cos(b), 45.3 * np.sin(b)], axis=1) + rng.normal(0, 0.05, (100_000, 2))
    t = np.linspace(0, 600, len(driven))
    run = RunRecord(odom_stamp=t, odom_wall=t, xy=driven, clock_sim=t, clock_wall=t / 2)

    return {
        "poses": len(driven),
        "reference_checkpoints": len(reference),
        "position_deviation": timed(lambda: position_deviation(reference, driven), 5, warmup=1),
        "percentage_completed": timed(lambda: percentage_completed(driven, reference), 5, warmup=1),
        "evaluate_run": timed(lambda: evaluate_run(run, reference), 3, warmup=1),
    }


def laps() -> list[dict[str, Any]]:
    pilot = Pilot(PilotConfig(model=str(MODEL)))

    def brain(img: np.ndarray) -> tuple[float, float]:
        cmd = pilot(img)
        return cmd.v, cmd.w

    rows = []
    for name in circuit_names():
        circuit = get_circuit(name)
        sim = Simulation(circuit)
        for reverse in (False, True):
            tr = drive(sim, brain, max_time=200.0, dt=0.05, reverse=reverse)
            run = RunRecord(
                odom_stamp=tr.t, odom_wall=tr.t, xy=tr.xy, clock_sim=tr.t, clock_wall=tr.t,
                cmd_wall=tr.t[:-1], cmd=tr.cmd[:-1], inference_ms=tr.brain_ms,
            )  # fmt: skip
            r = evaluate_run(run, load_reference(name))
            rows.append(
                {
                    "circuit": name,
                    "direction": "clockwise" if reverse else "counter-clockwise",
                    "lap_completed": r.lap_completed,
                    "lap_time_s": r.lap_time_s,
                    "percentage_completed": r.percentage_completed,
                    "average_speed_mps": r.average_speed_mps,
                    "position_deviation_mean_m": r.position_deviation_mean_m,
                    "position_deviation_max_m": r.position_deviation_max_m,
                    "position_deviation_bm_score": r.position_deviation_bm_score,
                    "suddenness": r.suddenness,
                    "brain_iteration_frequency_sim_hz": r.brain_iteration_frequency_sim_hz,
                    "closed_loop_wall_s": tr.wall_s,
                    "brain_ms_median": float(np.median(tr.brain_ms)),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> int:
    circuit = get_circuit("simple")
    renderer = CircuitRenderer(circuit)
    idx = np.linspace(0, len(circuit.centerline) - 1, 200).astype(int)
    heading = circuit.heading()
    frames = [renderer.render(*circuit.centerline[i], heading[i]).copy() for i in idx]
    brain = {f"threads_{n}": brain_frequency(n, frames) for n in (1, 2)}
    for k, v in brain.items():
        print(k, json.dumps(v), flush=True)
    dev = deviation_timing()
    print(json.dumps(dev), flush=True)
    lap_rows = laps()
    best_hz = max(v["iterations_per_s"] for v in brain.values())
    simple = next(r for r in lap_rows if r["circuit"] == "simple" and r["direction"] == "counter-clockwise")
    result = {
        "benchmark": "behavior",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "model": {"path": str(MODEL.relative_to(ROOT)), "bytes": MODEL.stat().st_size},
        "brain_onnxruntime_cpu": brain,
        "brain_speed_up_over_seed_best_tftrt": best_hz / SEED_BEST_TFTRT_HZ,
        "metrics_timing": dev,
        "closed_loop_laps": lap_rows,
        "targets": [
            target("brain_iterations_per_s_onnxruntime_cpu", best_hz, ">=", 300.0, "Hz"),
            target(
                "position_deviation_100k_vs_10k_median_ms",
                dev["position_deviation"]["median_ms"],
                "<=",
                100.0,
                "ms",
            ),
            target("simple_circuit_lap_completed", float(simple["lap_completed"]), ">=", 1.0, "(1 = yes)"),
        ],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["targets"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
