"""``trt-perception evaluate``: FP32 reference vs FP16 vs INT8 Q/DQ copies (made by the engine
layer's precision recipes) on the same frames, reported side by side with every column."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from engine_helpers import tensorrt_usable
from evaluation_standins import make_dataset, make_detector, make_variants, write_bag

from trt_perception.commands import evaluate as evaluate_cmd
from trt_perception.metrics.coco import COCO_STAT_NAMES


def run_cli(*argv: str) -> int:
    p = argparse.ArgumentParser()
    evaluate_cmd.add_arguments(p)
    return evaluate_cmd.run(p.parse_args(list(argv)))


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("standin")
    ann = make_dataset(root / "ds", n=24)
    model = make_detector(root / "det.onnx")
    return {"root": root, "ann": ann, "model": model}


def test_fp32_fp16_int8_report_has_all_columns(standin: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    rc = run_cli(
        "--dataset", str(standin["ann"].parent), "--model", str(standin["model"]),
        "--precisions", "fp32,fp16,int8", "--int8-target", "cpu", "--out", str(out), "--quiet",
    )  # fmt: skip
    assert rc == 0
    assert {p.name for p in out.iterdir()} >= {
        "report.md",
        "report.json",
        "report.csv",
        "pr_curve.png",
        "latency_hist.png",
        "models",
    }
    assert (out / "models" / "det_fp16.onnx").is_file() and (out / "models" / "det_int8.onnx").is_file()
    report = json.loads((out / "report.json").read_text())
    assert any("INT8 calibrated on the first 24 evaluated frames" in w for w in report["warnings"])
    assert report["task"] == "detection" and report["conf_threshold"] == pytest.approx(1e-2)
    names = [c["name"] for c in report["configurations"]]
    assert [c["precision"] for c in report["configurations"]] == ["fp32", "fp16", "int8"]
    assert report["reference"] == names[0] and report["frames"] == 24
    for c in report["configurations"]:
        assert c["frames"] == 24 and c["error"] is None
        assert set(COCO_STAT_NAMES) <= set(c["metrics"]) and {"AP[car]", "AP[plate]"} <= set(c["metrics"])
        for clock in ("end_to_end", "inference"):
            lat = c["latency_ms"][clock]
            assert {
                "mean_ms",
                "std_ms",
                "min_ms",
                "max_ms",
                "median_ms",
                "fps_avg",
                "fps_min",
                "fps_max",
            } <= set(lat)
            assert 0 < lat["min_ms"] <= lat["median_ms"] <= lat["max_ms"]
        assert c["model_size_mb"] > 0 and c["speedup_end_to_end"] > 0
        assert 0.1 < c["metrics"]["AP"] < 0.9
    # deltas are against the reference: zero for itself, value - reference for the others
    ref = report["configurations"][0]
    assert ref["delta_vs_reference"]["AP"]["abs"] == 0
    for c in report["configurations"][1:]:
        assert c["delta_vs_reference"]["AP"]["abs"] == pytest.approx(
            c["metrics"]["AP"] - ref["metrics"]["AP"]
        )
        assert abs(c["delta_vs_reference"]["AP"]["abs"]) < 0.05  # FP16/INT8 cost little on this model

    with open(out / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == names
    for col in (
        "AP",
        "AP50",
        "AR100",
        "delta_AP",
        "end_to_end_mean_ms",
        "end_to_end_std_ms",
        "end_to_end_fps_avg",
        "end_to_end_fps_min",
        "end_to_end_fps_max",
        "inference_mean_ms",
        "model_size_mb",
        "speedup_end_to_end",
    ):
        assert col in rows[0], col
        assert all(r[col] != "" for r in rows), col

    md = (out / "report.md").read_text()
    for heading in ("## Summary", "## Accuracy", "## Latency"):
        assert heading in md
    for name in names:
        assert name in md
    assert "AP @[IoU=0.50:0.95 | area=all | maxDets=100]" in md and "FPS min" in md and "Δ" in md
    assert "end-to-end" in md and "inference" in md
    img = cv2.imread(str(out / "pr_curve.png"))
    assert img is not None and img.shape[0] > 100


def test_bag_source_report_and_named_models(standin: dict[str, Path], tmp_path: Path) -> None:
    frames = [cv2.imread(str(p)) for p in sorted((standin["ann"].parent / "images").glob("*.png"))[:8]]
    variants = make_variants(standin["model"], frames)
    bag = write_bag(standin["ann"], tmp_path / "bag", storage="sqlite3")
    out = tmp_path / "bag_report"
    rc = run_cli(
        "--bag", str(bag), "--gt-topic", "/ground_truth/detections", "--model", f"reference={standin['model']}",
        "--model", f"half={variants['fp16']}", "--model", f"quant={variants['int8']}", "--out", str(out),
        "--quiet", "--no-plots", "--reference", "reference",
    )  # fmt: skip
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert [c["name"] for c in report["configurations"]] == ["reference", "half", "quant"]
    assert not report["warnings"]
    assert [c["precision"] for c in report["configurations"]] == ["fp32", "fp16", "int8"]
    assert all(c["frames"] == 24 for c in report["configurations"])
    assert not (out / "pr_curve.png").exists()


def test_int8_with_separate_calibration_folder(standin: dict[str, Path], tmp_path: Path) -> None:
    calib = tmp_path / "calib"
    make_dataset(calib, n=6, seed=7)
    out = tmp_path / "calibrated"
    rc = run_cli("--dataset", str(standin["ann"]), "--model", str(standin["model"]), "--precisions", "fp32,int8",
                 "--calibration", str(calib / "images"), "--out", str(out), "--quiet", "--no-plots")  # fmt: skip
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert [c["precision"] for c in report["configurations"]] == ["fp32", "int8"] and not report["warnings"]


def test_config_file_keeps_the_evaluation_threshold(standin: dict[str, Path], tmp_path: Path) -> None:
    """A node YAML sets the stage options, but its deployment conf_threshold does not leak into mAP."""
    cfg = tmp_path / "detector.yaml"
    cfg.write_text(
        "/**:\n  ros__parameters:\n"
        f'    model: "{standin["model"]}"\n    conf_threshold: 0.9\n    iou_threshold: 0.45\n'
        "    image_topic: camera/image_raw\n    precision: fp16\n"
    )
    out = tmp_path / "cfg_report"
    assert run_cli("--dataset", str(standin["ann"]), "--config", str(cfg), "--out", str(out), "--quiet",
                   "--no-plots") == 0  # fmt: skip
    c = json.loads((out / "report.json").read_text())["configurations"][0]
    assert c["name"] == "detector" and c["metrics"]["detections"] > 24 * 2  # low-score boxes kept


def test_clear_errors(standin: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("--model", str(standin["model"])) == 2
    assert "exactly one of --dataset or --bag" in capsys.readouterr().err
    assert run_cli("--dataset", str(standin["ann"]), "--model", str(tmp_path / "nope.onnx")) == 2
    assert "model not found" in capsys.readouterr().err
    assert (
        run_cli("--bag", str(tmp_path / "nobag"), "--gt-topic", "/x", "--model", str(standin["model"])) == 2
    )
    assert "bag not found" in capsys.readouterr().err
    assert run_cli("--dataset", str(standin["ann"]), "--model", str(standin["model"]), "--option", "nope=1",
                   "--quiet", "--out", str(tmp_path / "o")) == 1  # fmt: skip
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert "has no option(s) ['nope']" in report["configurations"][0]["error"]


def test_report_percentages_match_fractions(standin: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert run_cli("--dataset", str(standin["ann"]), "--model", str(standin["model"]), "--out", str(out),
                   "--quiet", "--no-plots") == 0  # fmt: skip
    c = json.loads((out / "report.json").read_text())["configurations"][0]
    assert f"{c['metrics']['AP'] * 100:.2f} %" in (out / "report.md").read_text()
    assert np.isfinite(c["latency_ms"]["end_to_end"]["mean_ms"])


def test_tensorrt_columns_skipped_with_a_warning_where_absent(
    standin: dict[str, Path], tmp_path: Path
) -> None:
    if tensorrt_usable():
        pytest.skip("TensorRT is present: the real build is tested below")
    out = tmp_path / "no_trt"
    assert run_cli("--dataset", str(standin["ann"]), "--model", str(standin["model"]), "--tensorrt",
                   "--out", str(out), "--quiet", "--no-plots") == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert len(report["configurations"]) == 1
    assert any("--tensorrt: TensorRT is not installed" in w for w in report["warnings"])


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.skipif(not tensorrt_usable(), reason="needs TensorRT and a CUDA GPU")
def test_onnxruntime_vs_tensorrt_fp32_fp16_int8(standin: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "trt"
    assert run_cli("--dataset", str(standin["ann"]), "--model", str(standin["model"]), "--precisions",
                   "fp32,fp16,int8", "--tensorrt", "--out", str(out), "--quiet") == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    cfgs = {c["name"]: c for c in report["configurations"]}
    for p in ("fp32", "fp16", "int8"):
        ort, trt = cfgs[f"det onnxruntime {p}"], cfgs[f"det tensorrt {p}"]
        assert trt["backend"] == "tensorrt" and trt["error"] is None and trt["frames"] == 24
        assert trt["metrics"]["AP"] == pytest.approx(ort["metrics"]["AP"], abs=0.02)
