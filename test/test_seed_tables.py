"""The seed-table benchmarks run end to end in their quick mode and write what the README promises
(no timing assertions: the numbers are the benchmarks' business, not the tests')."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import bench_brains, bench_thesis


def test_thesis_table_quick_on_the_ctc_reader(tmp_path: Path) -> None:
    out = tmp_path / "thesis.json"
    assert bench_thesis.main(["--quick", "--models", "plate_reader_ctc", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    variants = doc["models"]["plate_reader_ctc"]["variants"]
    assert set(variants) == {f"{b}/{r}" for b in bench_thesis.BACKENDS for r in bench_thesis.RECIPES}
    for v in variants.values():
        assert {"mean_ms", "std_ms", "fps"} <= set(v["latency"]) and v["size_bytes"] > 0
        assert 0.0 <= v["metric"] <= 1.0
    assert variants["onnxruntime/fp32"]["metric"] == 1.0  # every held-out plate read
    assert doc["models"]["plate_reader_ctc"]["accuracy_aware"]["openvino/int8_accuracy_aware"]["steps"]
    assert set(doc["machine"]["cpu_isa"]) >= {"avx2", "avx512f", "avx512_vnni"}
    assert len(doc["machine"]["load_average_at_start"]) == 3
    target = doc["targets"][0]
    assert target["recipe"] in variants and target["relative_loss"] <= 0.01
    assert doc["cpu_default_backend"]["plate_reader_ctc"] in bench_thesis.BACKENDS
    assert doc["pipeline"] == {}  # the pipeline table needs the detector too
    assert "| plate_reader_ctc | openvino | INT8 accuracy-aware |" in doc["table_markdown"]


def test_brains_table_quick(tmp_path: Path) -> None:
    out = tmp_path / "brains.json"
    assert bench_brains.main(["--quick", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    recipes = ("fp32", "fp16", "int8", "int8_accuracy_aware")
    keys = {f"{b}/{p}" for b in ("onnxruntime", "openvino") for p in recipes}
    assert set(doc["closed_loop"]) == set(doc["offline"]) == keys
    aa = doc["accuracy_aware"]
    assert set(aa) == {f"{b}/int8_accuracy_aware" for b in ("onnxruntime", "openvino")}
    # the ORT recipe keeps the image stem in float before any search; every step is judged by the MSE
    assert "/features/features.0/Conv" in aa["onnxruntime/int8_accuracy_aware"]["in_float_by_recipe"]
    assert all(r["steps"] and math.isfinite(r["validation_mse_after"]) for r in aa.values())
    for rows in doc["closed_loop"].values():
        assert [r["circuit"] for r in rows] == ["simple", "montreal"]
        assert all(r["average_speed_mps"] > 0 and r["mean_inference_time_ms"] > 0 for r in rows)
    assert all(math.isfinite(o["mse"]) and o["size_bytes"] > 0 for o in doc["offline"].values())
    assert "| brain | size (MB) | MSE (v, w) | MSE v | MSE w |" in doc["table_markdown"]
    assert "| openvino/int8_accuracy_aware | none |" in doc["table_markdown"]


def test_demo_duration_reports_fps_range(capsys: pytest.CaptureFixture[str]) -> None:
    """``--duration`` loops the video for that long and sums the run up as FPS average/min/max."""
    from trt_perception.cli import main

    assert main(["demo", "--duration", "3", "--plain", "--backend", "openvino"]) == 0
    out = capsys.readouterr().out
    assert "FPS over one-second windows: average" in out and "minimum" in out and "maximum" in out
