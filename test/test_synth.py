"""The synthetic world: deterministic scenes, consistent ground truth, valid COCO, readable sample recordings."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tools.synth.dataset import coco_dict, write_coco_set
from tools.synth.scene import (
    LANE_MARKING,
    PLATE,
    ROAD,
    SEGMENTATION_CLASSES,
    VEHICLE,
    animate,
    random_scene,
    render,
    video_scene,
)


def _frame(seed: int, width: int = 640, height: int = 360):
    rng = np.random.default_rng(seed)
    return render(random_scene(rng), width, height, int(rng.integers(2**31)))


def test_same_seed_same_bytes() -> None:
    a, b, c = _frame(3), _frame(3), _frame(4)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.mask.tobytes() == b.mask.tobytes()
    assert a.annotations == b.annotations
    assert a.image.tobytes() != c.image.tobytes()


def test_written_set_is_byte_identical(tmp_path: Path) -> None:
    def digest(out: Path) -> str:
        frames = ((i, _frame(10 + i)) for i in range(3))
        write_coco_set(out, frames)
        h = hashlib.sha256()
        for f in sorted(out.rglob("*")):
            if f.is_file():
                h.update(f.relative_to(out).as_posix().encode() + f.read_bytes())
        return h.hexdigest()

    assert digest(tmp_path / "a") == digest(tmp_path / "b")


def test_masks_agree_with_boxes() -> None:
    for seed in range(12):
        frame = _frame(seed, 1280, 720)
        h, w = frame.mask.shape
        assert frame.mask.max() < len(SEGMENTATION_CLASSES)
        assert (frame.mask == ROAD).mean() > 0.1
        assert (frame.mask == LANE_MARKING).any()
        vehicle = frame.mask == VEHICLE
        covered = np.zeros_like(vehicle)
        for ann in frame.annotations:
            x, y, bw, bh = ann.bbox
            assert min(x, y) >= 0 and x + bw <= w + 1e-3 and y + bh <= h + 1e-3
            if ann.category_id == PLATE:
                assert len(ann.text) >= 5 and bw >= 70 and bh >= 20, ann  # readable at 720p
            else:
                # anti-aliased polygon edges may reach one pixel past the exact box
                covered[max(int(y) - 1, 0) : int(y + bh) + 2, max(int(x) - 1, 0) : int(x + bw) + 2] = True
        # Every vehicle pixel lies in some car box; every car box is mostly vehicle pixels.
        assert not (vehicle & ~covered).any()
        for ann in frame.annotations:
            if ann.category_id != PLATE:
                x, y, bw, bh = (round(v) for v in ann.bbox)
                assert vehicle[y : y + bh, x : x + bw].mean() > 0.5


def test_coco_loads_in_pycocotools(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    coco = coco_dict((f"{i}.jpg", 1000 + i, _frame(i)) for i in range(6))
    path = tmp_path / "a.json"
    path.write_text(json.dumps(coco))
    api = COCO(str(path))
    assert {c["name"] for c in api.loadCats(api.getCatIds())} == {"car", "plate"}
    plates = api.loadAnns(api.getAnnIds(catIds=[2]))
    assert plates and all(a["text"] for a in plates)
    assert all("stamp_ns" in img for img in api.dataset["images"])
    assert coco["segmentation_classes"] == ["background", "road", "lane_marking", "vehicle"]


def test_video_motion_is_smooth() -> None:
    scene = video_scene(np.random.default_rng(1))
    a = render(animate(scene, 0.0), 640, 360)
    b = render(animate(scene, 1 / 30), 640, 360)
    assert len(a.annotations) == len(b.annotations) == 6
    for p, q in zip(a.annotations, b.annotations):
        assert p.text == q.text
        assert max(abs(u - v) for u, v in zip(p.bbox, q.bbox)) < 4.0


@pytest.mark.slow
def test_sample_data(sample_data) -> None:
    from pycocotools.coco import COCO
    from rosbags.rosbag2 import Reader

    api = COCO(str(sample_data.val_coco))
    assert len(api.imgs) >= 100 and len(api.getAnnIds(catIds=[2])) >= 100
    for img in list(api.imgs.values())[:3]:
        stem = Path(img["file_name"]).stem
        mask = cv2.imread(str(sample_data.masks_dir / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (img["height"], img["width"]) and mask.dtype == np.uint8
    cap = cv2.VideoCapture(str(sample_data.video))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (1280, 720)
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 300
    cap.release()
    bag_gt = json.loads(sample_data.bag_coco.read_text())
    stamps = {img["stamp_ns"] for img in bag_gt["images"]}
    with Reader(sample_data.bag) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        assert counts["/camera/image_raw"] == counts["/ground_truth/detections"] == len(stamps)
        assert {"/camera/camera_info", "/ground_truth/segmentation"} <= set(counts)
        assert {t for c, t, _ in reader.messages() if c.topic == "/camera/image_raw"} == stamps
