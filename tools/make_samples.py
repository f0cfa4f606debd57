"""Sample data for tests, benchmarks and demos, deterministic and generated in seconds.

    .venv/bin/python -m tools.make_samples --out data

writes ``data/val/`` (held-out COCO set with class masks), ``data/sample_scene.mp4`` (10 s 720p 30 fps),
``data/sample_bag/`` (rosbag2 mcap: image, camera_info, ground-truth detections and segmentation) and
``data/sample_bag_gt.json`` (COCO of the bag's frames, images keyed by ``stamp_ns``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from tools.synth.dataset import STAMP0_NS, camera_matrix, coco_dict, write_bag, write_coco_set
from tools.synth.scene import Frame, animate, random_scene, render, video_scene

if TYPE_CHECKING:
    from trt_perception.stages.plate_reader import PlateReader

ROOT = Path(__file__).resolve().parents[1]
VAL_SEED = 20_000  # training scripts draw from other seeds, so val stays held out
VIDEO_SEED = 20_001
BAG_SEED = 20_002


def scene_frames(
    seed: int, count: int, width: int, height: int, period_ns: int
) -> Iterator[tuple[int, Frame]]:
    """Independent random scenes, image ``i`` from seed ``(seed, i)``."""
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        scene = random_scene(rng)
        yield STAMP0_NS + i * period_ns, render(scene, width, height, int(rng.integers(2**31)))


def video_frames(seed: int, count: int, fps: float, width: int, height: int) -> Iterator[tuple[int, Frame]]:
    """One scene in motion: frame ``i`` at ``i / fps`` seconds."""
    rng = np.random.default_rng(seed)
    scene = video_scene(rng)
    for i in range(count):
        yield (
            STAMP0_NS + round(i * 1e9 / fps),
            render(animate(scene, i / fps), width, height, seed * 100_000 + i),
        )


def write_video(path: Path, frames: Iterator[tuple[int, Frame]], fps: float, size: tuple[int, int]) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4 video to {path}")
    for _, frame in frames:
        writer.write(frame.image)
    writer.release()


def make_all(out: Path, val_count: int = 120, video_seconds: float = 10.0, bag_frames: int = 20) -> None:
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "val", ignore_errors=True)  # no stale images from a larger earlier set
    t0 = time.perf_counter()
    write_coco_set(out / "val", scene_frames(VAL_SEED, val_count, 1280, 720, 33_333_333))
    t1 = time.perf_counter()
    fps = 30.0
    write_video(out / "sample_scene.mp4", video_frames(VIDEO_SEED, round(video_seconds * fps), fps, 1280, 720), fps,
                (1280, 720))  # fmt: skip
    t2 = time.perf_counter()
    # The bag: 2 s at 10 Hz of a moving scene at 720p (~2.8 MB per frame keeps it near 60 MB).
    frames = list(video_frames(BAG_SEED, bag_frames, 10.0, 1280, 720))
    k = camera_matrix(video_scene(np.random.default_rng(BAG_SEED)), 1280, 720)
    write_bag(out / "sample_bag", frames, k, ROOT / "third_party" / "vision_msgs" / "msg")
    coco = coco_dict((f"{stamp}.png", stamp, frame) for stamp, frame in frames)
    (out / "sample_bag_gt.json").write_text(json.dumps(coco, indent=1))
    t3 = time.perf_counter()
    print(f"val {t1 - t0:.1f} s, video {t2 - t1:.1f} s, bag {t3 - t2:.1f} s -> {out}")


def val_set(data: Path) -> Path:
    """``data/val`` (the held-out set the trainers score on), generated with the rest of ``data`` if missing."""
    val = data / "val"
    if not (val / "annotations.json").exists():
        make_all(data)
    return val


def val_plate_crops(reader: PlateReader, data: Path = ROOT / "data") -> tuple[list[np.ndarray], list[str]]:
    """The plates of ``data/val`` and their texts, cut as the plate stage cuts detections: ground-truth
    boxes through ``reader.crop_boxes`` (the stage's padding). The readers' scene-plate check."""
    val = val_set(data)
    coco = json.loads((val / "annotations.json").read_text())
    files = {im["id"]: im["file_name"] for im in coco["images"]}
    plates = [a for a in coco["annotations"] if a.get("text")]
    crops, texts = [], []
    for image_id in sorted({a["image_id"] for a in plates}):
        frame = cv2.imread(str(val / "images" / Path(files[image_id]).name))
        anns = [a for a in plates if a["image_id"] == image_id]
        boxes = np.array([a["bbox"] for a in anns], np.float32)
        boxes[:, 2:] += boxes[:, :2]
        for (x1, y1, x2, y2), a in zip(reader.crop_boxes(boxes, frame.shape[1], frame.shape[0]), anns):
            crops.append(frame[y1:y2, x1:x2])
            texts.append(a["text"])
    return crops, texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "data")
    parser.add_argument("--val-count", type=int, default=120)
    parser.add_argument("--video-seconds", type=float, default=10.0)
    parser.add_argument("--bag-frames", type=int, default=20)
    args = parser.parse_args(argv)
    make_all(args.out, args.val_count, args.video_seconds, args.bag_frames)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
