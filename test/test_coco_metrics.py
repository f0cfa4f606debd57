"""metrics/coco.py is pycocotools: the same 12 numbers (to 1e-6) as COCOeval run by hand on the same
detections, on synthetic data, on the sample validation set and on the sample bag."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trt_perception.metrics.coco import (
    COCO_STAT_NAMES,
    DEFAULT_CONF_THRESHOLD,
    detections_to_coco,
    evaluate_coco,
)

ROOT = Path(__file__).resolve().parents[1]


def pycocotools_direct(gt_path: Path, results: list[dict[str, Any]], tmp: Path, image_ids=None) -> np.ndarray:
    """What the mAP-verification seed does: COCO(gt file), loadRes(results file), COCOeval."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    res_path = tmp / "results.json"
    res_path.write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        dt = gt.loadRes(str(res_path))
        ev = COCOeval(gt, dt, "bbox")
        if image_ids is not None:
            ev.params.imgIds = sorted(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


def noisy_detections(coco: dict[str, Any], seed: int = 0) -> list[dict[str, Any]]:
    """GT boxes jittered, some dropped, some false positives, scores spread over [0.005, 1]."""
    rng = np.random.default_rng(seed)
    out = []
    for a in coco["annotations"]:
        if rng.random() < 0.15:
            continue
        x, y, w, h = a["bbox"]
        j = rng.normal(0, 0.08, 4) * [w, h, w, h]
        out.append(
            {
                "image_id": a["image_id"],
                "category_id": a["category_id"],
                "bbox": [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])],
                "score": float(rng.uniform(0.005, 1.0)),
            }
        )
    cats = [c["id"] for c in coco["categories"]]
    for im in coco["images"][::3]:
        out.append(
            {
                "image_id": im["id"],
                "category_id": int(rng.choice(cats)),
                "bbox": [float(rng.uniform(0, 500)), float(rng.uniform(0, 300)), 60.0, 40.0],
                "score": float(rng.uniform(0.005, 0.6)),
            }
        )
    return out


def synthetic_gt(n_images: int = 30, seed: int = 1) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    images = [{"id": i + 1, "width": 640, "height": 480, "file_name": f"{i}.png"} for i in range(n_images)]
    anns = []
    for im in images:
        for _ in range(int(rng.integers(1, 6))):
            w, h = rng.uniform(8, 200, 2)  # spans small / medium / large
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": im["id"],
                    "category_id": int(rng.integers(1, 3)),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    return {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "plate"}],
    }


def test_twelve_numbers_equal_pycocotools(tmp_path: Path) -> None:
    gt = synthetic_gt()
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    dets = noisy_detections(gt)
    ours = evaluate_coco(gt, dets, conf_threshold=0.0)
    ref = pycocotools_direct(gt_path, dets, tmp_path)
    np.testing.assert_allclose(ours.stats, ref, atol=1e-6)
    assert len(ours.stats) == len(COCO_STAT_NAMES) == 12
    assert 0.2 < ours.map < 0.95 and ours.map50 >= ours.map
    assert list(ours.as_dict()) == [*COCO_STAT_NAMES[:2], "AP50_VOC", *COCO_STAT_NAMES[2:]]
    # per-class AP averages to the overall AP (pycocotools' mean over classes)
    assert np.mean(list(ours.per_class_ap.values())) == pytest.approx(ours.map, abs=1e-9)


def test_confidence_threshold_default_and_its_cost(tmp_path: Path) -> None:
    gt = synthetic_gt(seed=3)
    dets = noisy_detections(gt, seed=3)
    assert DEFAULT_CONF_THRESHOLD == 1e-2
    kept = [d for d in dets if d["score"] >= 1e-2]
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    np.testing.assert_allclose(
        evaluate_coco(gt, dets).stats, pycocotools_direct(gt_path, kept, tmp_path), atol=1e-6
    )
    # A deployment threshold (0.3) drops low-confidence true positives: lower AP (seed 003).
    assert evaluate_coco(gt, dets, conf_threshold=0.3).map < evaluate_coco(gt, dets).map


def test_empty_detections_and_image_subset(tmp_path: Path) -> None:
    gt = synthetic_gt(n_images=10)
    empty = evaluate_coco(gt, [])
    assert empty.map == 0.0 and empty.num_detections == 0
    dets = noisy_detections(gt)
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    subset = [1, 2, 3, 4]
    ours = evaluate_coco(gt, dets, conf_threshold=0.0, image_ids=subset)
    np.testing.assert_allclose(ours.stats, pycocotools_direct(gt_path, dets, tmp_path, subset), atol=1e-6)


def test_ground_truth_without_area_or_ids() -> None:
    """GT built from a bag topic has no 'area'/'iscrowd'/'id': filled as pycocotools assumes."""
    gt = synthetic_gt(n_images=5)
    bare = {
        **gt,
        "annotations": [{k: a[k] for k in ("image_id", "category_id", "bbox")} for a in gt["annotations"]],
    }
    dets = noisy_detections(gt)
    np.testing.assert_allclose(evaluate_coco(bare, dets).stats, evaluate_coco(gt, dets).stats, atol=1e-12)


def test_detections_to_coco_converts_xyxy() -> None:
    res = detections_to_coco(7, np.array([[10, 20, 50, 60]], np.float32), np.array([0.5]), np.array([2]))
    assert res == [{"image_id": 7, "category_id": 2, "bbox": [10.0, 20.0, 40.0, 40.0], "score": 0.5}]


DETECTOR = ROOT / "models" / "detector.onnx"


@pytest.mark.slow
def test_evaluator_equals_pycocotools_on_sample_dataset(sample_data: Any, tmp_path: Path) -> None:
    from trt_perception.evaluation.runner import evaluate
    from trt_perception.evaluation.sources import CocoFolderSource
    from trt_perception.evaluation.tasks import DetectionTask, EvalConfig

    source = CocoFolderSource(sample_data.val_coco, limit=40)
    ev = evaluate(source, DetectionTask(), [EvalConfig("fp32", DETECTOR)], progress=False)
    r = ev.results[0]
    assert r.frames == 40 and not r.error
    dets = [d for ds in r.outputs.values() for d in ds]
    assert dets, "the detector produced no detection at all"
    ref = pycocotools_direct(sample_data.val_coco, dets, tmp_path, list(r.outputs))
    ours = np.array([r.scores.metrics[k] for k in COCO_STAT_NAMES])
    np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.slow
def test_evaluator_equals_pycocotools_on_sample_bag(sample_data: Any, tmp_path: Path) -> None:
    from trt_perception.evaluation.runner import evaluate
    from trt_perception.evaluation.sources import BagSource
    from trt_perception.evaluation.tasks import DetectionTask, EvalConfig

    source = BagSource(sample_data.bag, "/camera/image_raw", gt_json=sample_data.bag_coco)
    ev = evaluate(source, DetectionTask(), [EvalConfig("fp32", DETECTOR)], progress=False)
    r = ev.results[0]
    assert r.frames == len(json.loads(sample_data.bag_coco.read_text())["images"]) and not ev.warnings
    dets = [d for ds in r.outputs.values() for d in ds]
    ref = pycocotools_direct(sample_data.bag_coco, dets, tmp_path, list(r.outputs))
    np.testing.assert_allclose([r.scores.metrics[k] for k in COCO_STAT_NAMES], ref, atol=1e-6)
    # ground truth read from the bag's own topic gives the same frames and scores
    from_topic = BagSource(
        sample_data.bag, "/camera/image_raw", gt_topic="/ground_truth/detections", categories=["car", "plate"]
    )
    ev2 = evaluate(from_topic, DetectionTask(), [EvalConfig("fp32", DETECTOR)], progress=False)
    np.testing.assert_allclose(ev2.results[0].scores.metrics["AP"], r.scores.metrics["AP"], atol=1e-3)
