"""Closed loop: the sample PilotNet drives the simulated circuits.

In-process (ROS-free) for the accuracy part: the exact same stage the node runs, the simulator and
the behavior metrics. Then the real thing as processes: circuit_sim + pilot + behavior_evaluator over
Fast DDS, at twice real time, until the evaluator writes its lap report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from trt_perception.metrics.behavior import evaluate_run, simulated_run
from trt_perception.sim.circuits import get_circuit, load_reference
from trt_perception.sim.world import Simulation, drive
from trt_perception.stages.pilot import Pilot, PilotConfig

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "pilotnet.onnx"


def _lap(name: str, reverse: bool = False):  # type: ignore[no-untyped-def]
    pilot = Pilot(PilotConfig(model=str(MODEL)))
    sim = Simulation(get_circuit(name))

    def brain(img: np.ndarray) -> tuple[float, float]:
        cmd = pilot(img)
        return cmd.v, cmd.w

    tr = drive(sim, brain, max_time=150.0, dt=0.05, reverse=reverse)
    return tr, evaluate_run(simulated_run(tr.t, tr.xy, tr.cmd), load_reference(name))


def test_pilotnet_completes_the_simple_circuit() -> None:
    tr, report = _lap("simple")
    assert tr.lap_completed and not tr.off_track, f"stopped at {report.percentage_completed:.0f}%"
    assert report.lap_completed and report.percentage_completed >= 100.0
    assert report.position_deviation_mean_m < 0.5 and report.position_deviation_max_m < 2.0
    assert 25.0 < report.lap_time_s < 60.0  # type: ignore[operator]
    assert report.average_speed_mps > 5.0


@pytest.mark.slow
@pytest.mark.parametrize("name, reverse", [("simple", True), ("montreal", False)])
def test_pilotnet_completes_other_laps(name: str, reverse: bool) -> None:
    tr, report = _lap(name, reverse)
    assert tr.lap_completed and report.lap_completed, f"stopped at {report.percentage_completed:.0f}%"
    assert report.position_deviation_mean_m < 0.5


@pytest.mark.ros
@pytest.mark.slow
def test_sim_pilot_evaluator_processes_complete_a_lap(start_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "results"
    sim = start_node(
        "circuit_sim", params_file=ROOT / "config" / "circuit_sim.yaml", params={"speed_up": 2.0}
    )
    pilot = start_node(
        "pilot",
        params_file=ROOT / "config" / "pilot.yaml",
        params={"model": str(MODEL), "use_sim_time": True},
    )
    evaluator = start_node(
        "behavior_evaluator",
        params_file=ROOT / "config" / "behavior_evaluator.yaml",
        params={
            "reference": "simple",
            "output_dir": str(out),
            "output_prefix": "lap",
            "exit_on_finish": True,
            "use_sim_time": True,
        },
    )
    deadline = time.monotonic() + 90
    report = out / "lap.json"
    while time.monotonic() < deadline and not report.exists():
        assert sim.alive(), sim.log()
        assert pilot.alive(), pilot.log()
        time.sleep(0.5)
    assert report.exists(), evaluator.log()[-3000:] + pilot.log()[-2000:]
    time.sleep(0.5)
    data = json.loads(report.read_text())
    assert data["finished"] == "lap completed" and data["lap_completed"]
    assert data["time_base"] == "sim"
    assert data["position_deviation_mean_m"] < 0.6
    assert 25.0 < data["lap_time_s"] < 60.0
    assert data["brain_iterations"] > 200 and data["brain_iteration_frequency_sim_hz"] > 5.0
    assert data["mean_inference_time_ms"] > 0
    assert 0.5 < data["real_time_factor"] < 2.5  # asked for 2x; a loaded machine may not keep up
    assert data["odometry_out_of_order"] == 0
    for suffix in (".csv", ".png", "_trajectory.csv"):
        assert (out / f"lap{suffix}").stat().st_size > 0
