"""Sample data for tests, benchmarks and demos, deterministic and generated in seconds.

    .venv/bin/python -m tools.make_samples --out data

writes ``data/val/`` (held-out COCO set with class masks), ``data/sample_scene.mp4`` (10 s 720p 30 fps
of traffic: vehicles entering, leaving, passing each other) with its ground truth ``sample_scene_gt.json``
(COCO, one image per video frame keyed by ``stamp_ns``, cars and plates with ``track_id``) and
``sample_scene_mot.txt`` (MOT ``gt.txt`` of the cars), ``data/sample_bag/`` (rosbag2 mcap of another
traffic sequence: image, camera_info, ground-truth detections and segmentation) with
``sample_bag_gt.json`` / ``sample_bag_mot.txt``, and ``data/traffic/`` (a traffic sequence as a COCO
image folder with ``track_id``s and ``gt/gt.txt``, for ``evaluate --task tracking``).
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
from tools.synth.scene import Frame, random_scene, render, video_scene
from tools.synth.traffic import mot_lines, traffic_frames

if TYPE_CHECKING:
    from trt_perception.stages.plate_reader import PlateReader

ROOT = Path(__file__).resolve().parents[1]
VAL_SEED = 20_000  # training scripts draw from other seeds, so val stays held out
VIDEO_SEED = 20_001
BAG_SEED = 20_002
SEQUENCE_SEED = 20_003


def scene_frames(
    seed: int, count: int, width: int, height: int, period_ns: int
) -> Iterator[tuple[int, Frame]]:
    """Independent random scenes, image ``i`` from seed ``(seed, i)``."""
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        scene = random_scene(rng)
        yield STAMP0_NS + i * period_ns, render(scene, width, height, int(rng.integers(2**31)))


def video_frames(seed: int, count: int, fps: float, width: int, height: int) -> Iterator[tuple[int, Frame]]:
    """A traffic sequence (``tools/synth/traffic.py``): frame ``i`` at ``i / fps`` seconds."""
    frames = traffic_frames(seed, count / fps, fps, width, height, per_minute=30.0)
    for i, (_, frame) in enumerate(frames):
        yield STAMP0_NS + round(i * 1e9 / fps), frame


def write_ground_truth(out: Path, stem: str, frames: list[tuple[int, Frame]]) -> dict:
    """``<stem>_gt.json`` (COCO, images keyed by ``stamp_ns``) and ``<stem>_mot.txt`` of ``frames``."""
    coco = coco_dict((f"{stamp}.png", stamp, frame) for stamp, frame in frames)
    (out / f"{stem}_gt.json").write_text(json.dumps(coco, indent=1))
    (out / f"{stem}_mot.txt").write_text("\n".join(mot_lines([f for _, f in frames])) + "\n")
    return coco


def write_sequence(
    out: Path, seed: int, seconds: float, fps: float, size: tuple[int, int] = (1280, 720)
) -> dict:
    """A traffic sequence as a COCO image folder (frames in order of image id) plus ``gt/gt.txt``."""
    shutil.rmtree(out, ignore_errors=True)
    frames = list(video_frames(seed, round(seconds * fps), fps, *size))
    coco = write_coco_set(out, iter(frames))
    (out / "gt").mkdir(exist_ok=True)
    (out / "gt" / "gt.txt").write_text("\n".join(mot_lines([f for _, f in frames])) + "\n")
    return coco


def write_video(path: Path, frames: Iterator[tuple[int, Frame]], fps: float, size: tuple[int, int]) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4 video to {path}")
    for _, frame in frames:
        writer.write(frame.image)
    writer.release()


def make_all(
    out: Path,
    val_count: int = 120,
    video_seconds: float = 10.0,
    bag_frames: int = 20,
    sequence_seconds: float = 12.0,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "val", ignore_errors=True)  # no stale images from a larger earlier set
    t0 = time.perf_counter()
    write_coco_set(out / "val", scene_frames(VAL_SEED, val_count, 1280, 720, 33_333_333))
    t1 = time.perf_counter()
    fps = 30.0
    video = list(video_frames(VIDEO_SEED, round(video_seconds * fps), fps, 1280, 720))
    write_video(out / "sample_scene.mp4", iter(video), fps, (1280, 720))
    write_ground_truth(out, "sample_scene", video)
    t2 = time.perf_counter()
    # The bag: 2 s at 10 Hz of traffic at 720p (~2.8 MB per frame keeps it near 60 MB).
    frames = list(video_frames(BAG_SEED, bag_frames, 10.0, 1280, 720))
    k = camera_matrix(video_scene(np.random.default_rng(BAG_SEED)), 1280, 720)
    write_bag(out / "sample_bag", frames, k, ROOT / "third_party" / "vision_msgs" / "msg")
    write_ground_truth(out, "sample_bag", frames)
    t3 = time.perf_counter()
    write_sequence(out / "traffic", SEQUENCE_SEED, sequence_seconds, 10.0)
    t4 = time.perf_counter()
    print(
        f"val {t1 - t0:.1f} s, video {t2 - t1:.1f} s, bag {t3 - t2:.1f} s, sequence {t4 - t3:.1f} s -> {out}"
    )


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
    parser.add_argument("--sequence-seconds", type=float, default=12.0, help="data/traffic at 10 fps")
    args = parser.parse_args(argv)
    make_all(args.out, args.val_count, args.video_seconds, args.bag_frames, args.sequence_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
