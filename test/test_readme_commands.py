"""Every command README.md shows runs here, short, and says what it should.

``readme_commands()`` collects the commands of README's ``bash`` blocks and inline code; each must match
one entry of ``EXERCISES`` (a pattern and the test that runs it), so a new README command without a CI
exercise fails ``test_every_readme_command_is_exercised``. Robot-only commands (apt, colcon, ros2 launch,
in the block marked ``<!-- robot -->``) cannot run on this machine: their files are checked instead
(launch files in test_launch_files.py, the robot lock below).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, SampleData

BIN = Path(sys.executable).parent
README = ROOT / "README.md"
PLATE = re.compile(r"\b[A-Z]{2}\d{3}[A-Z]{2}\b")

#: pattern of a README command -> the test here (or elsewhere) that runs it.
EXERCISES: dict[str, str] = {
    r"bash scripts/demo\.sh$": "test_demo_main_job",
    r"bash scripts/demo\.sh --help$": "test_demo_help",
    r"bash scripts/demo\.sh --ros\b.*": "test_demo_ros_publishes",
    r"bash scripts/test\.sh$": ".ci/run (this very run)",
    r"\.venv/bin/trt-perception --help$": "test_cli_help",
    r"\.venv/bin/detector --ros-args --params-file config/detector\.yaml$": "test_detection_nodes.py::test_detector_node",
    r"(\.venv/bin/)?trt-perception evaluate --dataset data/val .*": "test_evaluate_dataset",
    r"(\.venv/bin/)?trt-perception evaluate --bag data/sample_bag .*": "test_evaluate_bag",
    r"(\.venv/bin/)?trt-perception behavior --bag .*": "test_behavior",
    r"(\.venv/bin/)?trt-perception evaluate --task tracking --dataset data/traffic .*": (
        "test_tracking_outputs.py::test_evaluate_tracking_on_the_sample_sequence"
    ),
    r"\.venv/bin/python -m bench\.bench_tracking$": "test_bench_tracking_short_run",
    r"(\.venv/bin/)?trt-perception quantize \S+ --backend openvino .*": (
        "test_openvino_recipes.py::test_detector_recipes_keep_metadata_and_task_metric"
    ),
    r"(\.venv/bin/)?trt-perception quantize .* --accuracy-aware .*": (
        "test_openvino_recipes.py::test_quantize_accuracy_aware_reports_steps_by_task_metric"
    ),
    r"(\.venv/bin/)?trt-perception quantize( .*)?": "test_quantize_compare_fuse",
    r"(\.venv/bin/)?trt-perception demo --duration .*": "test_seed_tables.py::test_demo_duration_reports_fps_range",
    r"(\.venv/bin/)?trt-perception evaluate --dataset data/val --results .*": (
        "test_evaluation_results.py::test_results_files_scored_side_by_side"
    ),
    r"\.venv/bin/python -m bench\.bench_thesis$": "test_seed_tables.py::test_thesis_table_quick_on_the_ctc_reader",
    r"\.venv/bin/python -m bench\.bench_brains$": "test_seed_tables.py::test_brains_table_quick",
    r"\.venv/bin/python -m bench\.bench_segmentation$": "test_bench_segmentation_quick",
    r"\.venv/bin/python -m bench\.bench_multicamera$": "test_bench_multicamera_short_run",
    r"bash scripts/jetson_check\.sh$": "test_jetson_check.py::test_quick_check_reports_what_it_skipped_and_why",
    r"\.venv/bin/opt_in_out --opt_out$": "test_openvino_telemetry_opt_out",
    r"(\.venv/bin/)?trt-perception compare( .*)?": "test_quantize_compare_fuse",
    r"(\.venv/bin/)?trt-perception fuse-argmax( .*)?": "test_quantize_compare_fuse",
    r"(\.venv/bin/)?trt-perception build --config \S+ --compute-capability .*": "test_build_ahead_of_time_for_rtx",
    r"(\.venv/bin/)?trt-perception build( .*)?": "test_build_without_tensorrt",
    r"\.venv/bin/python -m tools\.make_samples --out data$": (
        "conftest.py sample_data (a fresh clone has no data/) + test_make_samples_is_deterministic"
    ),
    r"bash bench/run_all\.sh$": "test_bench_run_all_lists_runnable_benchmarks",
    r"\.venv/bin/python -m bench\.summarize$": "test_bench_summarize",
    r"bash scripts/lock\.sh( --upgrade)?$": "test_robot_lock_and_lock_inputs",
    r"\.venv/bin/pip install -r requirements-train\.txt$": "test_train_requirements_resolve",
}


def readme_commands() -> list[str]:
    """Commands of README's bash blocks (robot block excepted) and of its inline code."""
    text = README.read_text()
    text = re.sub(r"<!-- robot -->\s*```bash.*?```", "", text, flags=re.S)
    found: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            cmd = re.split(r"\s+#", line, maxsplit=1)[0].strip()
            if cmd and not cmd.startswith("#"):
                found.append(cmd)
    for code in re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S)):
        cmd = " ".join(code.split())
        if cmd.startswith(("trt-perception ", "bash ", ".venv/bin/")) and " " in cmd and "<" not in cmd:
            found.append(cmd)
    return list(dict.fromkeys(found))


def run(args: list[str], cwd: Path = ROOT, timeout: float = 300, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **kw}, check=False
    )


def cli(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run([str(BIN / "trt-perception"), *args], cwd=cwd, timeout=timeout)


def test_every_readme_command_is_exercised() -> None:
    commands = readme_commands()
    assert len(commands) >= 10, commands
    missing = [c for c in commands if not any(re.fullmatch(p, c) for p in EXERCISES)]
    assert not missing, f"README commands with no CI exercise (add one to EXERCISES): {missing}"


def test_demo_main_job(sample_data: SampleData) -> None:
    out = run(["bash", "scripts/demo.sh", "--plain", "--max-frames", "36"])
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"^36 frames in [\d.]+ s", out.stdout, flags=re.M), out.stdout[-2000:]
    assert len(set(PLATE.findall(out.stdout))) >= 2, out.stdout[-2000:]


def test_demo_help() -> None:
    out = run(["bash", "scripts/demo.sh", "--help"])
    assert out.returncode == 0 and "--ros" in out.stdout and "--realtime" in out.stdout


@pytest.mark.ros
def test_demo_ros_publishes(sample_data: SampleData, ros_node: Any) -> None:
    from vision_msgs.msg import Detection2DArray

    from trt_perception.ros.qos import reliable_qos

    got: dict[str, list[Any]] = {"detections": [], "plates": []}
    for topic, msgs in got.items():
        ros_node.create_subscription(Detection2DArray, topic, msgs.append, reliable_qos(50))
    # Played at the video's rate so the topics outlive discovery; the view goes to the log.
    proc = subprocess.Popen(
        ["bash", "scripts/demo.sh", "--ros", "--plain", "--realtime", "--max-frames", "150"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert ros_node.spin_until(lambda: len(got["plates"]) >= 10 or proc.poll() is not None, 120)
        ros_node.spin_until(lambda: proc.poll() is not None, 120)
    finally:
        proc.kill() if proc.poll() is None else None
        log = proc.stdout.read() if proc.stdout else ""
    assert proc.returncode == 0, log[-2000:]
    assert got["detections"] and any(len(m.detections) for m in got["detections"]), log[-2000:]
    texts = {d.results[0].hypothesis.class_id for m in got["plates"] for d in m.detections if d.results}
    assert any(PLATE.fullmatch(t) for t in texts), texts
    assert "frames in" in log


def test_cli_help() -> None:
    out = run([str(BIN / "trt-perception"), "--help"])
    assert out.returncode == 0
    for sub in ("build", "compare", "quantize", "fuse-argmax", "evaluate", "behavior", "demo"):
        assert sub in out.stdout


def _report(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "report.json").read_text())


def test_evaluate_dataset(sample_data: SampleData, tmp_path: Path) -> None:
    out = cli(
        "evaluate", "--dataset", str(sample_data.val_dir), "--model", "models/detector.onnx",
        "--precisions", "fp32,fp16,int8", "--limit", "24", "--calibration-frames", "16",
        "--calibration", str(sample_data.root / "traffic" / "images"),
        "--no-plots", "--out", str(tmp_path / "det"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "mAP" in out.stdout or "AP" in out.stdout, out.stdout[-2000:]
    text = (tmp_path / "det" / "report.md").read_text()
    for precision in ("fp32", "fp16", "int8"):
        assert precision in text.lower()
    # Each configuration's ModelInfo travels into the report: the copies kept the labels.
    for c in _report(tmp_path / "det")["configurations"]:
        assert c["model_info"]["labels"] == ["car", "plate"] and c["model_info"]["precision"] == c["precision"]
    assert "## Models" in text and "labels ['car', 'plate']" in text


def test_evaluate_bag(sample_data: SampleData, tmp_path: Path) -> None:
    out = cli(
        "evaluate", "--bag", str(sample_data.bag), "--gt", str(sample_data.bag_coco),
        "--model", "models/detector.onnx", "--no-plots", "--out", str(tmp_path / "bag"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "bag" / "report.json").is_file() and "detector" in out.stdout


def test_behavior(tmp_path: Path) -> None:
    from test_behavior_metrics import _write_bag

    _write_bag(tmp_path / "drive")
    out = cli("behavior", "--bag", str(tmp_path / "drive"), "--reference", "simple", "--out", str(tmp_path / "r"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "position deviation" in out.stdout.lower() or "deviation" in out.stdout, out.stdout[-2000:]
    assert list((tmp_path / "r").glob("*.json")) and list((tmp_path / "r").glob("*.png"))


def test_quantize_compare_fuse(sample_data: SampleData, tmp_path: Path) -> None:
    fp16, int8 = tmp_path / "det_fp16.onnx", tmp_path / "det_int8.onnx"
    out = cli(
        "quantize", "models/detector.onnx", "--fp16", str(fp16), "--int8", str(int8),
        "--calib-images", str(sample_data.images_dir), "--count", "16",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert fp16.stat().st_size > 0 and int8.stat().st_size > 0
    cmp = cli(
        "compare", "models/detector.onnx", str(fp16), "--images", str(sample_data.images_dir), "--rtol", "0.02",
        "-n", "2",
    )  # fmt: skip
    assert cmp.returncode == 0, cmp.stdout[-2000:] + cmp.stderr[-2000:]
    assert "PASS" in cmp.stdout.upper(), cmp.stdout[-2000:]
    fused = tmp_path / "seg_fused.onnx"
    out = cli("fuse-argmax", "models/segmenter.onnx", str(fused))
    assert out.returncode == 0 and fused.stat().st_size > 0, out.stderr[-2000:]


def test_build_without_tensorrt(tmp_path: Path) -> None:
    from trt_perception.inference.factory import tensorrt_available

    if tensorrt_available():
        pytest.skip("TensorRT is installed: the Jetson check builds for real")
    out = cli("build", "models/detector.onnx", "--precision", "fp16", "--cache-dir", str(tmp_path))
    assert out.returncode == 2
    assert "TensorRT is not installed" in out.stdout + out.stderr and "Traceback" not in out.stderr


def test_build_ahead_of_time_for_rtx(tmp_path: Path) -> None:
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX is in the lock; CI has it")
    cache = tmp_path / "engines_rtx"
    args = ("build", "--config", "config/engine_builder.yaml", "--compute-capability", "8.6", "--cache-dir")
    out = cli(*args, str(cache))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert len(list(cache.glob("*.engine")) + list(cache.glob("*.plan"))) == 4, list(cache.iterdir())
    again = cli(*args, str(cache), "--check")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]


def test_make_samples_is_deterministic(tmp_path: Path) -> None:
    """The README command itself runs in every fresh clone (the ``sample_data`` fixture, ~2 min); here
    two small runs must write byte-identical files."""
    small = ["--val-count", "3", "--video-seconds", "0.5", "--bag-frames", "3", "--sequence-seconds", "1"]
    for name in ("a", "b"):
        out = run([sys.executable, "-m", "tools.make_samples", "--out", str(tmp_path / name), *small], timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert any(f.suffix == ".mp4" for f in files) and any(f.name == "annotations.json" for f in files)
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_bench_run_all_lists_runnable_benchmarks() -> None:
    out = run(["bash", "bench/run_all.sh", "--list"])
    assert out.returncode == 0, out.stderr
    names = out.stdout.split()
    assert len(names) >= 5
    for name in names:  # each one importable with a main(); running them all is a quiet-machine job
        mod = run([sys.executable, "-c", f"import bench.bench_{name} as m; assert callable(m.main)"])
        assert mod.returncode == 0, (name, mod.stderr[-1500:])


def test_bench_tracking_short_run(tmp_path: Path) -> None:
    """The 3-minute benchmark on 8 s of traffic: it runs end to end and writes its target rows (a short
    sequence need not meet the targets; the committed result is the full run)."""
    out = tmp_path / "tracking.json"
    res = run([sys.executable, "-m", "bench.bench_tracking", "--seconds", "8", "--out", str(out)], timeout=600)
    assert res.returncode in (0, 1), res.stderr[-2000:]
    rows = {t["name"]: t for t in json.loads(out.read_text())["targets"]}
    assert rows["IDF1"]["value"] > 0.5 and rows["tracker median ms per frame at 50 objects"]["value"] > 0


def test_bench_segmentation_quick(sample_data: SampleData, tmp_path: Path) -> None:
    out = tmp_path / "segmentation.json"
    res = run([sys.executable, "-m", "bench.bench_segmentation", "--quick", "--frames", "2", "--out", str(out)], timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(out.read_text())["targets"], res.stdout[-2000:]


def test_bench_multicamera_short_run(sample_data: SampleData, tmp_path: Path) -> None:
    """The 5-minute benchmark with 1 and 2 cameras over 2 s windows: every mode runs and the engine's
    batching curve is measured (the N = 4 targets need the full run)."""
    out = tmp_path / "multicamera.json"
    args = ["--seconds", "2", "--rounds", "1", "--warmup", "0.5", "--counts", "1", "2", "--curve-iters", "2"]
    res = run([sys.executable, "-m", "bench.bench_multicamera", *args, "--out", str(out)], timeout=600)
    assert res.returncode in (0, 1), res.stderr[-2000:]
    result = json.loads(out.read_text())
    for mode in ("batched", "separate_threads", "separate_processes"):
        assert all(result["modes"][mode][n]["aggregate_fps"] > 0 for n in ("1", "2")), result["modes"][mode]
    assert result["batching_curve_ort_cpu"]["2"]["p10_ms"] > 0


def test_openvino_telemetry_opt_out() -> None:
    out = run([str(BIN / "opt_in_out"), "--opt_out"])
    assert out.returncode == 0, out.stdout + out.stderr


def test_bench_summarize() -> None:
    out = run([sys.executable, "-m", "bench.summarize"])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("| bench |") and out.stdout.count("\n") > 10
    assert out.stdout in (ROOT / "bench" / "results" / "SUMMARY.md").read_text()


def test_robot_lock_and_lock_inputs() -> None:
    """The robot lock resolves for a Jetson (aarch64, Python 3.10) with hashes, numpy below 2."""
    lock = (ROOT / "requirements-robot.lock").read_text()
    assert re.search(r"^numpy==1\.", lock, flags=re.M) and "--hash=sha256:" in lock
    out = run(
        [str(BIN / "uv"), "pip", "compile", "--quiet", "--python-version", "3.10",
         "--python-platform", "aarch64-manylinux_2_28", "--no-header", "--no-annotate",
         "requirements-robot.lock"],
        timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "onnxruntime==" in out.stdout and "opencv" not in out.stdout


def test_train_requirements_resolve() -> None:
    out = run([str(BIN / "python"), "-m", "pip", "install", "--dry-run", "-q", "-r", "requirements-train.txt"])
    assert out.returncode == 0, out.stderr[-2000:]
