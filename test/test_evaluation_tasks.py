"""The other tasks through the same runner and report: segmentation (mIoU from the segmentation
helper's metrics, per-class IoU), regression (PilotNet MSE), plates (exact match / character accuracy)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from segmentation_standin import CLASSES, synthetic_frame
from segmentation_standin import build as build_segmenter

from trt_perception.evaluation.report import write_report
from trt_perception.evaluation.runner import evaluate
from trt_perception.evaluation.sources import CocoFolderSource
from trt_perception.evaluation.tasks import (
    EvalConfig,
    PlatesTask,
    RegressionTask,
    SegmentationTask,
)
from trt_perception.metrics.segmentation import confusion_matrix, iou_per_class, mean_iou

ROOT = Path(__file__).resolve().parents[1]
PILOTNET = ROOT / "models" / "pilotnet.onnx"


def coco_folder(root: Path, frames: list[np.ndarray], extra: list[dict] | None = None,
                masks: list[np.ndarray] | None = None) -> Path:  # fmt: skip
    (root / "images").mkdir(parents=True)
    images = []
    for i, f in enumerate(frames):
        cv2.imwrite(str(root / "images" / f"{i:04d}.png"), f)
        images.append({"id": i + 1, "file_name": f"{i:04d}.png", "width": f.shape[1], "height": f.shape[0],
                       **((extra or [{}] * len(frames))[i])})  # fmt: skip
    if masks is not None:
        (root / "masks").mkdir()
        for i, m in enumerate(masks):
            cv2.imwrite(str(root / "masks" / f"{i:04d}.png"), m)
    coco = {"images": images, "annotations": [], "categories": [], "segmentation_classes": CLASSES}
    (root / "annotations.json").write_text(json.dumps(coco))
    return root / "annotations.json"


def test_segmentation_miou_side_by_side(tmp_path: Path) -> None:
    pairs = [synthetic_frame(128, 192, seed=s) for s in range(6)]
    ann = coco_folder(tmp_path / "seg", [f for f, _ in pairs], masks=[m for _, m in pairs])
    model = build_segmenter(tmp_path / "seg.onnx")
    configs = [
        EvalConfig("cpu argmax", model),
        EvalConfig("network res", model, options={"output_resolution": "network"}),
    ]
    ev = evaluate(CocoFolderSource(ann), SegmentationTask(), configs, progress=False)
    for r in ev.results:
        assert r.frames == 6 and not r.error
        assert set(r.scores.metrics) >= {"mIoU", "pixel_accuracy", *(f"IoU[{c}]" for c in CLASSES)}
    # the reported mIoU is the segmentation helper's mean_iou over the summed confusion matrices
    cm = sum(ev.results[0].outputs.values())
    assert ev.results[0].scores.metrics["mIoU"] == pytest.approx(mean_iou(cm))
    assert ev.results[0].scores.metrics["IoU[road]"] == pytest.approx(iou_per_class(cm)[1])
    from trt_perception.stages.segmenter import Segmenter, SegmenterConfig

    seg = Segmenter(SegmenterConfig(model=str(model)))
    direct = sum(confusion_matrix(m, seg(f).mask, 4) for f, m in pairs)
    np.testing.assert_array_equal(cm, direct)
    assert ev.results[0].scores.metrics["mIoU"] > 0.8
    paths = write_report(ev, tmp_path / "report", plots=True)
    md = paths["markdown"].read_text()
    assert "mIoU" in md and "IoU[lane_marking]" in md and "network res" in md
    assert "pr" not in paths and paths["latency"].is_file()  # no PR curve for segmentation


def test_regression_mse_fp32_vs_fp16(tmp_path: Path) -> None:
    from trt_perception.modelops.precision import to_fp16
    from trt_perception.stages.pilot import Pilot, PilotConfig

    rng = np.random.default_rng(0)
    frames = [
        cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (0, 0), 5) for _ in range(8)
    ]
    pilot = Pilot(PilotConfig(model=str(PILOTNET)))
    cmds = [pilot(f) for f in frames]
    truth = [[c.v + 0.1, c.w - 0.05] for c in cmds]  # known offset: MSE = (0.1^2 + 0.05^2) / 2
    ann = coco_folder(tmp_path / "drive", frames, extra=[{"cmd": t} for t in truth])
    fp16 = to_fp16(PILOTNET, tmp_path / "pilotnet_fp16.onnx")
    ev = evaluate(CocoFolderSource(ann), RegressionTask(),
                  [EvalConfig("fp32", PILOTNET), EvalConfig("fp16", fp16, precision="fp16")], progress=False)  # fmt: skip
    fp32, half = (r.scores.metrics for r in ev.results)
    assert fp32["MSE"] == pytest.approx((0.1**2 + 0.05**2) / 2, rel=1e-6)
    assert fp32["MSE[v]"] == pytest.approx(0.01, rel=1e-6)
    assert abs(half["MSE"] - fp32["MSE"]) < 1e-2
    report = json.loads(write_report(ev, tmp_path / "r", plots=False)["json"].read_text())
    assert report["primary_metric"] == "MSE"
    assert report["configurations"][1]["delta_vs_reference"]["MSE"]["abs"] == pytest.approx(
        half["MSE"] - fp32["MSE"]
    )


def test_plates_scoring_from_outputs(tmp_path: Path) -> None:
    f = np.zeros((64, 128, 3), np.uint8)
    ann = coco_folder(tmp_path / "p", [f, f])
    coco = json.loads(ann.read_text())
    coco["categories"] = [{"id": 2, "name": "plate"}]
    coco["annotations"] = [
        {"id": 1, "image_id": 1, "category_id": 2, "bbox": [10, 10, 40, 12], "text": "AB123"},
        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [10, 10, 40, 12], "text": "XY987"},
        {"id": 3, "image_id": 2, "category_id": 2, "bbox": [60, 10, 40, 12], "text": "QQ111"},
    ]
    ann.write_text(json.dumps(coco))
    source = CocoFolderSource(ann)
    task = PlatesTask()
    task.bind(source)
    s = task.score(source, {1: ["AB123"], 2: ["XY98", None]}).metrics
    assert s["exact_match"] == pytest.approx(1 / 3) and s["plates"] == 3 and s["missed"] == 1
    assert s["char_accuracy"] == pytest.approx(1 - 6 / 15)
    empty = CocoFolderSource(coco_folder(tmp_path / "none", [f]))
    with pytest.raises(ValueError, match="no annotation carries a plate 'text'"):
        PlatesTask().bind(empty)


def test_segmentation_precisions_through_the_cli(tmp_path: Path) -> None:
    """FP16 / INT8 copies of a dynamic-input segmenter, calibrated with the stage's own pre-processing."""
    import argparse

    from trt_perception.commands import evaluate as cmd

    pairs = [synthetic_frame(96, 128, seed=s) for s in range(4)]
    ann = coco_folder(tmp_path / "seg", [f for f, _ in pairs], masks=[m for _, m in pairs])
    model = build_segmenter(tmp_path / "seg.onnx")
    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    out = tmp_path / "report"
    args = p.parse_args(["--task", "segmentation", "--dataset", str(ann), "--model", str(model), "--precisions",
                         "fp32,fp16,int8", "--int8-target", "cpu", "--out", str(out), "--quiet", "--no-plots"])  # fmt: skip
    assert cmd.run(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert [c["precision"] for c in report["configurations"]] == ["fp32", "fp16", "int8"]
    fp32 = report["configurations"][0]["metrics"]["mIoU"]
    assert fp32 > 0.75
    for c in report["configurations"]:
        # The copies' accuracy relative to FP32, not an absolute floor: an INT8 calibration on four
        # synthetic frames moves by a few points with the ONNX Runtime release (0.70 with 1.32).
        assert c["error"] is None and c["frames"] == 4 and c["metrics"]["mIoU"] > fp32 - 0.15


@pytest.mark.slow
def test_plates_with_a_real_recognizer_on_sample_plates(sample_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """PP-OCRv4 (rapidocr's pretrained CTC recognizer) on the sample set's ground-truth plate crops."""
    rapidocr = pytest.importorskip("rapidocr_onnxruntime")
    model = Path(rapidocr.__file__).parent / "models" / "ch_PP-OCRv4_rec_infer.onnx"
    if not model.is_file():
        pytest.skip(f"PP-OCRv4 rec not shipped in this rapidocr build: {model}")
    from trt_perception.evaluation.tasks import PlatesTask

    source = CocoFolderSource(sample_data.val_coco, limit=12)
    ev = evaluate(source, PlatesTask(), [EvalConfig("ppocr", model)], progress=False)
    r = ev.results[0]
    assert not r.error and r.frames == 12
    m = r.scores.metrics
    n_plates = sum(1 for a in source.coco["annotations"] if a.get("text"))
    assert m["plates"] == n_plates > 0 and m["missed"] == 0
    assert m["exact_match"] > 0.7 and m["char_accuracy"] > 0.9
    # frames without plates are no reader iterations: one latency sample per frame with plates
    with_plates = {a["image_id"] for a in source.coco["annotations"] if a.get("text")}
    assert r.end_to_end_ms.size == len(with_plates) and r.end_to_end_ms.min() > 0.1
