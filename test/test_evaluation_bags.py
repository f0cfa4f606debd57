"""rosbag2 sources: mcap and sqlite3, GT by stamp or from a topic, and damaged bags: a clear error
saying how many messages were read, and an evaluation that covers those frames."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from evaluation_standins import make_dataset, make_detector, write_bag

from trt_perception.evaluation.report import write_report
from trt_perception.evaluation.runner import evaluate
from trt_perception.evaluation.sources import BagSource, CocoFolderSource
from trt_perception.evaluation.tasks import DetectionTask, EvalConfig
from trt_perception.io.bags import Bag, BagReadError


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bags")
    ann = make_dataset(root / "ds", n=30)
    return {
        "root": root,
        "ann": ann,
        "model": make_detector(root / "det.onnx"),
        "mcap": write_bag(ann, root / "bag_mcap", "mcap"),
        "sqlite3": write_bag(ann, root / "bag_sqlite3", "sqlite3"),
    }


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_reads_both_storages(data: dict[str, Path], storage: str) -> None:
    with Bag(data[storage]) as bag:
        assert bag.info.storage == storage and not bag.info.salvaged
        assert bag.info.topics == {
            "/camera/image_raw": "sensor_msgs/msg/Image",
            "/ground_truth/detections": "vision_msgs/msg/Detection2DArray",
        }
        msgs = list(bag.messages(["/camera/image_raw"]))
    assert len(msgs) == 30
    assert all(m.data[:4] == b"\x00\x01\x00\x00" for m in msgs)  # CDR little-endian encapsulation
    assert [m.timestamp_ns for m in msgs] == sorted(m.timestamp_ns for m in msgs)


def test_gt_json_by_stamp_and_gt_topic_agree_with_the_folder(data: dict[str, Path]) -> None:
    cfg = [EvalConfig("fp32", data["model"])]
    folder = evaluate(CocoFolderSource(data["ann"]), DetectionTask(), cfg, progress=False)
    by_stamp = evaluate(BagSource(data["mcap"], gt_json=data["ann"]), DetectionTask(), cfg, progress=False)
    by_topic = evaluate(
        BagSource(data["sqlite3"], gt_topic="/ground_truth/detections", categories=["car", "plate"]),
        DetectionTask(), cfg, progress=False,
    )  # fmt: skip
    ap = folder.results[0].scores.metrics["AP"]
    assert by_stamp.results[0].scores.metrics["AP"] == pytest.approx(ap, abs=1e-12)
    assert by_topic.results[0].scores.metrics["AP"] == pytest.approx(ap, abs=1e-6)
    assert by_stamp.frames == by_topic.frames == 30


def truncated_copy(src: Path, dst: Path, keep: float) -> Path:
    shutil.copytree(src, dst)
    f = next(dst.glob("*.mcap"))
    size = f.stat().st_size
    with open(f, "r+b") as fh:
        fh.truncate(int(size * keep))
    return dst


def test_truncated_mcap_clear_error_with_count(data: dict[str, Path], tmp_path: Path) -> None:
    bag_dir = truncated_copy(data["mcap"], tmp_path / "cut", keep=0.5)
    n = 0
    with pytest.raises(BagReadError) as err, Bag(bag_dir) as bag:
        assert bag.info.salvaged and "/camera/image_raw" in bag.info.topics
        for _ in bag.messages():
            n += 1
    e = err.value
    assert 0 < e.messages_read == n < 60 and e.expected == 60
    assert f"read {n} of 60 messages" in str(e) and str(bag_dir) in str(e) and "cut at byte" in str(e)


def test_truncated_bag_report_covers_the_frames_read(data: dict[str, Path], tmp_path: Path) -> None:
    bag_dir = truncated_copy(data["mcap"], tmp_path / "cut", keep=0.6)
    source = BagSource(bag_dir, gt_json=data["ann"])
    ev = evaluate(source, DetectionTask(), [EvalConfig("fp32", data["model"])], progress=False)
    r = ev.results[0]
    assert 0 < r.frames < 30 and not r.error
    assert any(f"the report covers the {r.frames} frames read" in w for w in ev.warnings)
    assert any("messages, then:" in w for w in ev.warnings)
    # scores are over the frames read only: equal to scoring those image ids directly
    from trt_perception.metrics.coco import evaluate_coco

    dets = [d for ds in r.outputs.values() for d in ds]
    direct = evaluate_coco(json.loads(data["ann"].read_text()), dets, image_ids=list(r.outputs))
    assert r.scores.metrics["AP"] == pytest.approx(direct.map, abs=1e-12)
    paths = write_report(ev, tmp_path / "report", plots=False)
    md = paths["markdown"].read_text()
    assert "**Warning:**" in md and f"{r.frames} frames" in md
    assert json.loads(paths["json"].read_text())["frames"] == r.frames


def test_corrupt_message_bytes_and_garbage_files(data: dict[str, Path], tmp_path: Path) -> None:
    # a file that is not a bag at all
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "junk.mcap").write_bytes(b"not an mcap file at all" * 10)
    with pytest.raises(BagReadError, match=r"read 0 messages.*bad magic"), Bag(junk) as bag:
        list(bag.messages())
    # a corrupt sqlite file
    bad = tmp_path / "bad_sqlite"
    shutil.copytree(data["sqlite3"], bad)
    db = next(bad.glob("*.db3"))
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 3])
    with pytest.raises(BagReadError, match=r"read \d+ of 60 messages"), Bag(bad) as bag:
        list(bag.messages())
    # ... and an evaluation of it names that cause, not a missing topic
    with pytest.raises(BagReadError, match=r"read 0 of 60 messages, then: .*malformed"):
        BagSource(bad, gt_json=data["ann"])


def test_single_mcap_file_without_metadata(data: dict[str, Path]) -> None:
    f = next(data["mcap"].glob("*.mcap"))
    with Bag(f) as bag:
        assert len(list(bag.messages(["/ground_truth/detections"]))) == 30


def test_frames_are_the_recorded_images(data: dict[str, Path]) -> None:
    import cv2

    coco = json.loads(data["ann"].read_text())
    frames = list(BagSource(data["mcap"], gt_json=data["ann"], limit=5).frames())
    assert len(frames) == 5
    for f, im in zip(frames, coco["images"]):
        assert f.image_id == im["id"] and f.stamp_ns == im["stamp_ns"]
        np.testing.assert_array_equal(f.bgr, cv2.imread(str(data["ann"].parent / "images" / im["file_name"])))


def test_missing_topic_is_named(data: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match=r"no topic /front/image.*it has: /camera/image_raw"):
        BagSource(data["mcap"], image_topic="/front/image", gt_json=data["ann"])
