"""bag_replay -> detector node -> live_scorer, all real processes: the live report scores the same
detections the offline evaluator does, so its mAP equals the offline one on the same bag."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from evaluation_standins import make_dataset, make_detector, write_bag
from ros_clients import probe_node

from trt_perception.evaluation.live import LiveScorer
from trt_perception.evaluation.runner import evaluate
from trt_perception.evaluation.sources import BagSource
from trt_perception.evaluation.tasks import DetectionTask, EvalConfig
from trt_perception.metrics.coco import evaluate_coco

CONFIG = Path(__file__).resolve().parents[1] / "config"
N = 20
#: A domain of its own: the three processes must not meet participants left over from earlier tests.
ENV = {"ROS_DOMAIN_ID": str(100 - int(os.environ.get("ROS_DOMAIN_ID", "10")) % 10)}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("live")
    ann = make_dataset(root / "ds", n=N)
    return {
        "ann": ann,
        "model": make_detector(root / "det.onnx"),
        "bag": write_bag(ann, root / "bag", "mcap"),
    }


def test_live_scorer_core_matches_offline(setup: dict[str, Path]) -> None:
    """Feeding the offline run's detections through LiveScorer gives the offline scores."""
    source = BagSource(setup["bag"], gt_topic="/ground_truth/detections", categories=["car", "plate"])
    offline = evaluate(source, DetectionTask(), [EvalConfig("fp32", setup["model"])], progress=False)
    scorer = LiveScorer(source, ["detection"])
    stamps = {im["id"]: im["stamp_ns"] for im in source.coco["images"]}
    names = {1: "car", 2: "plate"}
    for image_id, dets in offline.results[0].outputs.items():
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in dets)]).reshape(-1, 4)
        scores = np.array([d["score"] for d in dets])
        scorer.add_image(stamps[image_id], 0.0)
        scorer.add_detections(stamps[image_id], 0.01, boxes, scores, [names[d["category_id"]] for d in dets])
    scorer.add_detections(123, 0.0, np.zeros((0, 4)), np.zeros(0), [])  # unknown stamp: counted, not scored
    live = scorer.result("detection")
    assert live.frames == N
    assert live.results[0].scores.metrics["AP"] == pytest.approx(
        offline.results[0].scores.metrics["AP"], abs=1e-4
    )
    assert np.allclose(live.results[0].end_to_end_ms, 10.0)
    assert any("no ground truth" in w for w in live.warnings)


@pytest.mark.ros
@pytest.mark.slow
def test_replay_detector_scorer_processes(
    setup: dict[str, Path], start_node: Callable[..., Any], tmp_path: Path
) -> None:
    report_dir = tmp_path / "live_report"
    det = start_node("detector", params_file=CONFIG / "detector.yaml",
                     params={"model": str(setup["model"]), "conf_threshold": 0.01, "publish_annotated": False}, env=ENV)  # fmt: skip
    scorer = start_node(
        "live_scorer",
        params_file=CONFIG / "live_scorer.yaml",
        params={"bag": str(setup["bag"]), "tasks": ["detection"], "report_dir": str(report_dir),
                "exit_when_done": True, "plots": False},
        env=ENV,
    )  # fmt: skip
    # The detections path (detector -> scorer, volatile) must be there before the first frame: answers
    # sent before the scorer's subscription is discovered are lost, and a loaded CI run once lost them all.
    with probe_node(ENV["ROS_DOMAIN_ID"]) as probe:
        assert probe.spin_until(
            lambda: probe.count_publishers("/detections") >= 1
            and probe.count_subscribers("/detections") >= 1
            and probe.count_subscribers("/camera/image_raw") >= 2,
            60,
        ), f"{det.log()}\n{scorer.log()}"
    replay = start_node("bag_replay", params_file=CONFIG / "bag_replay.yaml",
                        params={"bag": str(setup["bag"]), "wait_for_subscribers": 2, "start_delay": 1.0,
                                "exit_when_done": True, "rate": 0.5}, env=ENV)  # fmt: skip
    assert replay.proc.wait(40) == 0, replay.log()
    try:
        scorer.proc.wait(20)
    except Exception:
        pytest.fail(f"scorer did not finish:\n{scorer.log()}\n--- detector ---\n{det.log()}")
    report = json.loads((report_dir / "detection" / "report.json").read_text())
    c = report["configurations"][0]
    # a loaded machine may drop a best-effort frame: the report says which frames it covers
    assert report["frames"] == len(c["image_ids"]) >= N - 3, scorer.log()
    source = BagSource(setup["bag"], gt_topic="/ground_truth/detections", categories=["car", "plate"])
    offline = evaluate(source, DetectionTask(), [EvalConfig("fp32", setup["model"])], progress=False)
    dets = [d for i in c["image_ids"] for d in offline.results[0].outputs[i]]
    expected = evaluate_coco(source.coco, dets, image_ids=c["image_ids"]).map
    assert c["metrics"]["AP"] == pytest.approx(expected, abs=1e-4)
    lat = c["latency_ms"]["end_to_end"]
    assert 0 < lat["median_ms"] < 500 and lat["min_ms"] > 0  # image arrival -> detections arrival
    assert (report_dir / "detection" / "report.md").is_file()


def test_live_segmentation_and_plates_scoring(sample_data) -> None:  # type: ignore[no-untyped-def]
    """On the sample bag: the GT masks fed back score mIoU 1; plate texts matched to GT boxes by IoU."""
    from trt_perception.evaluation.live import bag_ground_truth_masks

    source = BagSource(sample_data.bag, gt_topic="/ground_truth/detections", mask_topic="/ground_truth/segmentation",
                       categories=["car", "plate"])  # fmt: skip
    source.segmentation_classes = ["background", "road", "lane_marking", "vehicle"]
    scorer = LiveScorer(source, ["segmentation", "plates"])
    masks = bag_ground_truth_masks(source)
    scorer.set_gt_masks(masks)
    stamps = sorted(masks)
    for k, stamp in enumerate(stamps):
        mask = masks[stamp] if k % 2 == 0 else np.zeros_like(masks[stamp])  # every other frame all background
        scorer.add_mask(stamp, 1.0, mask)
    seg = scorer.result("segmentation").results[0].scores.metrics
    assert 0.3 < seg["mIoU"] < 1.0 and seg["IoU[road]"] < 1.0
    ids = {im["stamp_ns"]: im["id"] for im in source.coco["images"]}
    plates = [a for a in source.coco["annotations"] if a.get("text")]
    for stamp, image_id in ids.items():
        mine = [a for a in plates if a["image_id"] == image_id]
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in mine)]).reshape(-1, 4)
        scorer.add_plates(stamp, 1.0, boxes + 1.0, [a["text"] for a in mine])  # 1 px off: still matched
    p = scorer.result("plates").results[0].scores.metrics
    assert p["exact_match"] == 1.0 and p["plates"] == len(plates) > 0
