"""VOC-style mAP@0.5 (all-point interpolation, VOC2010+) beside COCO's AP50 (101 points): a hand-computed
example, the sample detector on data/val against the VOC devkit's own loop, and the evaluate report's row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trt_perception.metrics.coco import COCO_STAT_LABELS, evaluate_coco, voc_ap

ROOT = Path(__file__).resolve().parents[1]
DETECTOR = ROOT / "models" / "detector.onnx"


def test_voc_all_point_ap_by_hand() -> None:
    # precision envelope: 1.0 up to recall 0.5 (the 0.5 at recall 0.25 is raised to 1.0), then 0.6
    recall = np.array([0.25, 0.25, 0.5, 0.5, 0.75])
    precision = np.array([1.0, 0.5, 1.0, 0.5, 0.6])
    assert voc_ap(recall, precision) == pytest.approx(0.5 * 1.0 + 0.25 * 0.6)
    assert voc_ap(np.array([]), np.array([])) == 0.0


def test_voc_and_coco_ap50_on_hand_matched_detections() -> None:
    """Three cars, four detections: TP, FP (nothing there), TP, FP (a duplicate of the first car).

    Sorted by score: recall 1/3, 1/3, 2/3, 2/3; precision 1, 1/2, 2/3, 1/2.
    VOC all-point: 1/3 * 1 + 1/3 * 2/3 = 5/9. COCO 101-point: recall 0.00..0.33 at precision 1 (34
    points), 0.34..0.66 at 2/3 (33 points), 0.67..1.00 at 0 -> (34 + 22) / 101.
    """
    gt = {
        "images": [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}],
        "categories": [{"id": 1, "name": "car"}],
        "annotations": [
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]},
            {"image_id": 1, "category_id": 1, "bbox": [40, 0, 10, 10]},  # never found
            {"image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10]},
        ],
    }
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [60, 60, 10, 10], "score": 0.8},
        {"image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.7},
        {"image_id": 1, "category_id": 1, "bbox": [1, 0, 10, 10], "score": 0.6},
    ]
    m = evaluate_coco(gt, dets, conf_threshold=0.0)
    assert m.voc_map50 == pytest.approx(5 / 9)
    assert m.map50 == pytest.approx(56 / 101)
    keys = list(m.as_dict())
    assert keys.index("AP50_VOC") == keys.index("AP50") + 1 and m.as_dict()["AP50_VOC"] == m.voc_map50
    assert COCO_STAT_LABELS["AP50_VOC"] == "mAP@0.5 (VOC all-point)"
    # no detection at all: 0, not a crash; no ground truth at all: -1 (pycocotools' "undefined")
    assert evaluate_coco(gt, [], conf_threshold=0.0).voc_map50 == 0.0
    assert evaluate_coco({**gt, "annotations": []}, dets, conf_threshold=0.0).voc_map50 == -1.0


def _iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def devkit_voc_ap50(coco: dict[str, Any], dets: list[dict[str, Any]], image_ids: set[int]) -> float:
    """The VOC devkit's voc_eval loop (all-point AP), written out plainly: IoU >= 0.5 as COCO's,
    continuous box coordinates as pycocotools', at most 100 detections per image as COCOeval."""
    aps = []
    for cat in {c["id"] for c in coco["categories"]}:
        gts: dict[int, list[list[float]]] = {}
        for a in coco["annotations"]:
            if a["category_id"] == cat and a["image_id"] in image_ids:
                gts.setdefault(a["image_id"], []).append(a["bbox"])
        npos = sum(len(g) for g in gts.values())
        if not npos:
            continue
        per_image: dict[int, list[dict[str, Any]]] = {}
        for d in dets:
            if d["category_id"] == cat:
                per_image.setdefault(d["image_id"], []).append(d)
        cand = [d for ds in per_image.values() for d in sorted(ds, key=lambda d: -d["score"])[:100]]
        cand.sort(key=lambda d: -d["score"])
        taken = {i: [False] * len(g) for i, g in gts.items()}
        tp, fp = [], []
        for d in cand:
            g = gts.get(d["image_id"], [])
            ious = [_iou(d["bbox"], b) for b in g]
            best = int(np.argmax(ious)) if ious else -1
            hit = best >= 0 and ious[best] >= 0.5 and not taken[d["image_id"]][best]
            if hit:
                taken[d["image_id"]][best] = True
            tp.append(float(hit))
            fp.append(float(not hit))
        rec = np.cumsum(tp) / npos
        prec = np.cumsum(tp) / np.maximum(np.cumsum(tp) + np.cumsum(fp), 1e-12)
        mrec = [0.0, *rec, 1.0]
        mpre = [0.0, *prec, 0.0]
        for i in range(len(mpre) - 2, -1, -1):
            mpre[i] = max(mpre[i], mpre[i + 1])
        aps.append(
            sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1) if mrec[i + 1] != mrec[i])
        )
    return float(np.mean(aps))


def test_val_set_has_no_difficult_flags(sample_data: Any) -> None:
    """VOC's "difficult" boxes count neither way; the package's val set has none (nor crowd boxes)."""
    anns = json.loads(sample_data.val_coco.read_text())["annotations"]
    assert anns and not any("difficult" in a for a in anns)
    assert all(a.get("iscrowd", 0) == 0 for a in anns)


@pytest.mark.slow
def test_sample_detector_voc_map_equals_the_devkit_loop(sample_data: Any, tmp_path: Path) -> None:
    from trt_perception.evaluation.report import write_report
    from trt_perception.evaluation.runner import evaluate
    from trt_perception.evaluation.sources import CocoFolderSource
    from trt_perception.evaluation.tasks import DetectionTask, EvalConfig

    source = CocoFolderSource(sample_data.val_coco, limit=40)
    ev = evaluate(source, DetectionTask(), [EvalConfig("fp32", DETECTOR)], progress=False)
    r = ev.results[0]
    dets = [d for ds in r.outputs.values() for d in ds if d["score"] >= 1e-2]
    assert dets and not r.error
    voc, ap50 = r.scores.metrics["AP50_VOC"], r.scores.metrics["AP50"]
    assert voc == pytest.approx(devkit_voc_ap50(source.coco, dets, set(r.outputs)), abs=1e-9)
    assert 0.5 < voc <= 1.0 and abs(voc - ap50) < 0.02  # the same matches, two interpolations
    md = write_report(ev, tmp_path / "report", plots=False)["markdown"].read_text()
    lines = md.splitlines()
    coco_row = next(i for i, line in enumerate(lines) if line.startswith("| AP @[IoU=0.50 | area=all"))
    assert lines[coco_row + 1] == f"| mAP@0.5 (VOC all-point) | {voc * 100:.2f} % |"  # the row beside it
    assert "| AP50 (COCO 101-point) | mAP@0.5 (VOC all-point) |" in md  # summary columns


def test_results_files_table_labels_both_ap50s(
    sample_data: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``evaluate --results`` (seed 000/003's table from results files): VOC's row beside COCO's."""
    from trt_perception.cli import main

    anns = json.loads(sample_data.val_coco.read_text())["annotations"]
    dets = [{k: a[k] for k in ("image_id", "category_id", "bbox")} | {"score": 0.9} for a in anns[::2]]
    (tmp_path / "half.json").write_text(json.dumps(dets))
    argv = ["evaluate", "--dataset", str(sample_data.val_dir), "--out", str(tmp_path / "out")]
    assert main([*argv, "--results", f"half={tmp_path / 'half.json'}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    coco = next(i for i, line in enumerate(lines) if line.startswith("| AP50 (COCO 101-point) |"))
    assert lines[coco + 1].startswith("| mAP@0.5 (VOC all-point) |")
    scores = json.loads((tmp_path / "out" / "results_scores.json").read_text())["half"]
    assert 0.3 < scores["AP50_VOC"] < 0.7 and scores["AP50_VOC"] != scores["AP50"]
