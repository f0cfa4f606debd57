"""Issue 18 on the real sample models: the OpenVINO backend against ONNX Runtime, the NNCF recipes
(IR with the model's metadata), the task metric that judges every recipe, and ``quantize`` printing
each accuracy-aware step with the layers kept in float and the task metric before and after."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trt_perception.cli import main
from trt_perception.evaluation.task_metric import check_held_out, task_metric, task_of_model
from trt_perception.inference.engine import EngineError
from trt_perception.inference.factory import open_engine
from trt_perception.modelops import nncf_recipes as N
from trt_perception.modelops.precision import images_from_bag, model_precision

ROOT = Path(__file__).resolve().parents[1]
MODELS, DATA = ROOT / "models", ROOT / "data"


@pytest.fixture(scope="module")
def detector_calibration() -> list[dict[str, np.ndarray]]:
    from trt_perception.stages.detector import Detector, DetectorConfig

    det = Detector(DetectorConfig(model=str(MODELS / "detector.onnx"), backend="onnxruntime"))
    frames = images_from_bag(DATA / "sample_bag", "/camera/image_raw", 8)
    return [{k: np.array(v, copy=True) for k, v in det.encode(f).feeds.items()} for f in frames]


@pytest.mark.parametrize(
    "name", ["detector", "plate_reader_ctc", "plate_reader_heads", "segmenter", "pilotnet"]
)
def test_openvino_matches_onnxruntime_on_sample_models(name: str) -> None:
    ort = open_engine(MODELS / f"{name}.onnx", backend="onnxruntime")
    ov = open_engine(MODELS / f"{name}.onnx", backend="openvino")
    assert ov.backend == "openvino" and ov.info == ort.info  # same metadata, same ModelInfo
    shapes = {s.name: tuple(d if isinstance(d, int) else 2 for d in s.shape) for s in ort.inputs}
    if name == "segmenter":
        shapes = {k: (1, 3, 352, 640) for k in shapes}
    feeds = {k: np.random.default_rng(0).random(v, dtype=np.float32) for k, v in shapes.items()}
    ref = {k: v.copy() for k, v in ort.infer(feeds).items()}
    out = ov.infer(feeds)
    for k, r in ref.items():
        np.testing.assert_allclose(out[k], r, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(r).max())))


def test_detector_recipes_keep_metadata_and_task_metric(tmp_path: Path, detector_calibration: list) -> None:
    metric = task_metric("detection", DATA / "val", limit=12)
    fp32 = metric(MODELS / "detector.onnx")
    fp16 = N.openvino_fp16(MODELS / "detector.onnx", tmp_path / "det_fp16.xml")
    int8 = N.openvino_int8(MODELS / "detector.onnx", tmp_path / "det_int8.xml", detector_calibration)
    assert (model_precision(fp16), model_precision(int8)) == ("fp16", "int8")
    engine = open_engine(int8)  # .xml -> OpenVINO
    assert (
        engine.backend == "openvino"
        and engine.info.labels == open_engine(MODELS / "detector.onnx").info.labels
    )
    assert metric(fp16) == pytest.approx(fp32, abs=2e-3)
    assert 0.9 * fp32 < metric(int8) <= fp32 + 0.02  # INT8 costs a little mAP, not everything
    assert fp32 > 0.5


def test_task_metric_of_an_in_memory_engine_equals_its_file() -> None:
    metric = task_metric("plates", DATA / "val", limit=10)
    engine = open_engine(MODELS / "plate_reader_ctc.onnx", backend="openvino")
    assert metric.of_engine(engine) == metric(MODELS / "plate_reader_ctc.onnx") == 1.0
    assert open_engine(MODELS / "plate_reader_ctc.onnx").backend == "onnxruntime"  # served only inside
    assert task_of_model(MODELS / "detector.onnx") == "detection"
    assert task_of_model(MODELS / "plate_reader_heads.onnx") == "plates"


def test_held_out_split_is_enforced() -> None:
    with pytest.raises(EngineError, match="held-out"):
        check_held_out(DATA / "val", DATA / "val" / "images")
    check_held_out(DATA / "val", DATA / "sample_bag")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_quantize_accuracy_aware_reports_steps_by_task_metric(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / ("ctc_aa.xml" if backend == "openvino" else "ctc_aa.onnx")
    argv = ["quantize", str(MODELS / "plate_reader_ctc.onnx"), "--backend", backend, "--int8", str(out)]
    argv += ["--calib-bag", str(DATA / "sample_bag"), "--count", "16", "--val", str(DATA / "val")]
    argv += [
        "--val-count",
        "30",
        "--accuracy-aware",
        "--max-drop",
        "0.01",
        "--max-steps",
        "4",
        "--target",
        "cpu",
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "exact_match on 30 held-out images" in text
    assert "step 0: exact_match before 1.0000 (FP32), after" in text and "in float: none" in text
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert report["met"] and report["reference_metric"] == 1.0
    last = report["steps"][-1]
    assert last["relative_drop"] <= 0.01 and last["excluded"]  # a layer had to stay in float
    assert report["steps"][0]["metric"] < 1.0  # plain INT8 (whole frames as calibration) lost plates
    assert model_precision(out) == "int8"


def test_quantize_refuses_calibration_as_validation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["quantize", str(MODELS / "detector.onnx"), "--int8", str(tmp_path / "x.onnx")]
    argv += ["--calib-images", str(DATA / "val" / "images"), "--val", str(DATA / "val"), "--accuracy-aware"]
    assert main(argv) == 2
    assert "held-out" in capsys.readouterr().err


def test_evaluate_openvino_precisions_are_nncf_irs(tmp_path: Path) -> None:
    argv = [
        "evaluate",
        "--dataset",
        str(DATA / "val"),
        "--limit",
        "6",
        "--model",
        str(MODELS / "detector.onnx"),
    ]
    argv += [
        "--backend",
        "openvino",
        "--precisions",
        "fp32,fp16,int8",
        "--calibration",
        str(DATA / "traffic" / "images"),
    ]
    argv += ["--calibration-frames", "8", "--out", str(tmp_path), "--no-plots", "--quiet"]
    assert main(argv) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    got = [(Path(c["model"]).suffix, c["backend"], c["precision"]) for c in report["configurations"]]
    assert got == [(".onnx", "openvino", "fp32"), (".xml", "openvino", "fp16"), (".xml", "openvino", "int8")]
    assert report["machine"]["openvino"] and all(not c["error"] for c in report["configurations"])
    for c in report["configurations"][1:]:  # an IR's size counts its weights (.bin), not the .xml alone
        ir = Path(c["model"])
        expected = (ir.stat().st_size + ir.with_suffix(".bin").stat().st_size) / 2**20
        assert c["model_size_mb"] == pytest.approx(expected) and expected > 2 * ir.stat().st_size / 2**20


def test_openvino_errors_name_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a protobuf")
    with pytest.raises(EngineError, match=r"cannot load model .*junk\.onnx with OpenVINO"):
        open_engine(junk, backend="openvino")
    with pytest.raises(EngineError, match=r"model file not found: .*absent\.xml"):
        open_engine(tmp_path / "absent.xml")
    ir = N.openvino_fp16(MODELS / "pilotnet.onnx", tmp_path / "pilotnet.xml")
    with pytest.raises(EngineError, match="is an OpenVINO IR; backend 'onnxruntime' cannot run it"):
        open_engine(ir, backend="onnxruntime")
