"""``trt-perception build / compare / quantize`` end to end on a small ONNX (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from engine_helpers import make_convnet

from trt_perception.cli import main
from trt_perception.inference.factory import open_engine, tensorrt_available


@pytest.fixture(scope="module")
def onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_convnet(tmp_path_factory.mktemp("cli") / "convnet.onnx")


def test_quantize_then_compare(
    onnx: Path, tmp_path: Path, sample_data, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    fp16, int8 = tmp_path / "c16.onnx", tmp_path / "c8.onnx"
    args = [
        "quantize",
        str(onnx),
        "--fp16",
        str(fp16),
        "--int8",
        str(int8),
        "--shape",
        "64x64",
        "--calib-images",
        str(sample_data.images_dir),
        "--count",
        "8",
    ]
    assert main(args) == 0
    assert open_engine(fp16).input().name == "x" and open_engine(int8).input().name == "x"
    report = tmp_path / "cmp.json"
    assert main(["compare", str(onnx), str(fp16), "--shape", "x=1x3x64x64", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "y " in out and "PASS" in out
    data = json.loads(report.read_text())
    assert data["passed"] and data["outputs"]["y"]["max_abs"] < 1e-2
    # INT8 against a tight tolerance fails, and says so (exit 1)
    assert (
        main(["compare", str(onnx), str(int8), "--shape", "x=1x3x64x64", "--atol", "1e-6", "--rtol", "0"])
        == 1
    )
    assert "FAIL" in capsys.readouterr().out


def test_quantize_accuracy_aware_needs_a_held_out_task_metric(
    onnx: Path, tmp_path: Path, sample_data, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    """Issue 18: accuracy-aware INT8 is judged by the task metric on held-out data (``--val``), no longer
    by output fidelity (test_openvino_recipes.py runs it on a real plate reader)."""
    args = ["quantize", str(onnx), "--int8", str(tmp_path / "aa.onnx"), "--shape", "48x48"]
    args += ["--calib-images", str(sample_data.images_dir), "--accuracy-aware"]
    assert main(args) == 2
    assert "--accuracy-aware needs --val" in capsys.readouterr().err


def test_compare_errors_are_clear(onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(onnx), str(onnx)]) == 2
    assert "input 'x' is dynamic" in capsys.readouterr().err
    assert main(["compare", str(onnx), "/nope/missing.onnx", "--shape", "x=1x3x8x8"]) == 2
    assert "model file not found: /nope/missing.onnx" in capsys.readouterr().err


@pytest.mark.skipif(tensorrt_available(), reason="checks the message where TensorRT is absent")
def test_build_without_tensorrt(onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", str(onnx)]) == 2
    assert "TensorRT is not installed" in capsys.readouterr().err
