"""Scene frames -> COCO JSON + images + class masks on disk, and the rosbag2 sample recording."""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np

from tools.synth.scene import CATEGORIES, PLATE, SEGMENTATION_CLASSES, Frame, Scene
from trt_perception.io.stamps import sec_nanosec

STAMP0_NS = 1_700_000_000_000_000_000  # a fixed epoch keeps every output byte-identical run to run


def generator_digest() -> str:
    """Hash of the scene generator's sources: caches of rendered data are keyed by it."""
    import hashlib

    digest = hashlib.sha256()
    for src in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(src.read_bytes())
    return digest.hexdigest()[:12]


def cached_render(path: Path, count: int, render: Callable[[int], object], workers: int = 1) -> list:
    """``[render(i) for i in range(count)]``, rendered once (deterministic) and kept as a pickle at ``path``.

    ``render`` must be a module-level function so worker processes can pickle it.
    """
    if path.exists():
        with open(path, "rb") as f:
            data = pickle.load(f)
        if len(data) == count:
            return data
    t0 = time.perf_counter()
    if workers > 1:
        from multiprocessing import Pool

        with Pool(workers) as pool:
            data = pool.map(render, range(count), chunksize=16)
    else:
        data = [render(i) for i in range(count)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(data, f)
    print(f"rendered {count} training images in {time.perf_counter() - t0:.0f} s -> {path}", flush=True)
    return data


def coco_dict(frames: Iterable[tuple[str, int, Frame]]) -> dict:
    """COCO detection JSON for ``(file_name, stamp_ns, frame)``; plates carry their ``text``."""
    images, annotations = [], []
    for image_id, (file_name, stamp_ns, frame) in enumerate(frames, start=1):
        h, w = frame.mask.shape
        images.append({"id": image_id, "file_name": file_name, "width": w, "height": h, "stamp_ns": stamp_ns})
        for ann in frame.annotations:
            x, y, bw, bh = (round(v, 2) for v in ann.bbox)
            entry = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": ann.category_id,
                "bbox": [x, y, bw, bh],
                "area": round(bw * bh, 2),
                "iscrowd": 0,
            }
            if ann.category_id == PLATE:
                entry["text"] = ann.text
            if ann.track_id:
                entry["track_id"] = ann.track_id
            annotations.append(entry)
    return {
        "info": {"description": "trt_perception synthetic road scenes", "version": "1"},
        "images": images,
        "annotations": annotations,
        "categories": [dict(c, supercategory="vehicle") for c in CATEGORIES],
        "segmentation_classes": SEGMENTATION_CLASSES,
    }


def write_coco_set(out: Path, frames: Iterable[tuple[int, Frame]], jpeg_quality: int = 92) -> dict:
    """Writes ``out/images/*.jpg``, ``out/masks/*.png`` (mono8 class index) and ``out/annotations.json``."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    entries = []
    for i, (stamp_ns, frame) in enumerate(frames):
        stem = f"{i:06d}"
        cv2.imwrite(
            str(out / "images" / f"{stem}.jpg"), frame.image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
        )
        cv2.imwrite(str(out / "masks" / f"{stem}.png"), frame.mask)
        entries.append((f"{stem}.jpg", stamp_ns, frame))
    coco = coco_dict(entries)
    (out / "annotations.json").write_text(json.dumps(coco, indent=1))
    return coco


def camera_matrix(scene: Scene, width: int, height: int) -> np.ndarray:
    """Pinhole K of the scene's camera (optical axis parallel to the road, principal point on the horizon)."""
    f = scene.focal * width
    return np.array([[f, 0, width / 2.0], [0, f, scene.horizon * height], [0, 0, 1]], np.float64)


def write_bag(path: Path, frames: list[tuple[int, Frame]], k: np.ndarray, vision_msgs_dir: Path) -> None:
    """rosbag2 (mcap): image, camera_info, ground-truth detections and segmentation, one stamp per frame."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    types: dict = {}
    for msg in sorted(vision_msgs_dir.glob("*.msg")):
        types.update(get_types_from_msg(msg.read_text(), f"vision_msgs/msg/{msg.stem}"))
    store.register(types)
    t = store.types
    Header, Time = t["std_msgs/msg/Header"], t["builtin_interfaces/msg/Time"]
    Image, CameraInfo = t["sensor_msgs/msg/Image"], t["sensor_msgs/msg/CameraInfo"]
    RoI = t["sensor_msgs/msg/RegionOfInterest"]
    D2, D2A = t["vision_msgs/msg/Detection2D"], t["vision_msgs/msg/Detection2DArray"]
    Hyp, HypPose = t["vision_msgs/msg/ObjectHypothesis"], t["vision_msgs/msg/ObjectHypothesisWithPose"]
    BB, Pose2D, Point2D = (
        t["vision_msgs/msg/BoundingBox2D"],
        t["vision_msgs/msg/Pose2D"],
        t["vision_msgs/msg/Point2D"],
    )
    PWC, Pose = t["geometry_msgs/msg/PoseWithCovariance"], t["geometry_msgs/msg/Pose"]
    Point, Quat = t["geometry_msgs/msg/Point"], t["geometry_msgs/msg/Quaternion"]
    names = {c["id"]: c["name"] for c in CATEGORIES}

    def header(stamp_ns: int) -> object:
        sec, nanosec = sec_nanosec(stamp_ns)
        return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id="camera_optical")

    def detection(hdr: object, ann: object) -> object:
        x, y, w, h = ann.bbox  # type: ignore[attr-defined]
        pose = PWC(
            pose=Pose(position=Point(x=0.0, y=0.0, z=0.0), orientation=Quat(x=0.0, y=0.0, z=0.0, w=1.0)),
            covariance=np.zeros(36, np.float64),
        )
        hyp = HypPose(hypothesis=Hyp(class_id=names[ann.category_id], score=1.0), pose=pose)  # type: ignore[attr-defined]
        bbox = BB(center=Pose2D(position=Point2D(x=x + w / 2, y=y + h / 2), theta=0.0), size_x=w, size_y=h)
        return D2(header=hdr, results=[hyp], bbox=bbox, id=ann.text)  # type: ignore[attr-defined]

    if path.exists():
        import shutil

        shutil.rmtree(path)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {
            name: writer.add_connection(name, typ.__msgtype__, typestore=store)
            for name, typ in (
                ("/camera/image_raw", Image),
                ("/camera/camera_info", CameraInfo),
                ("/ground_truth/detections", D2A),
                ("/ground_truth/segmentation", Image),
            )
        }
        for stamp_ns, frame in frames:
            hdr = header(stamp_ns)
            h, w = frame.mask.shape
            msgs = {
                "/camera/image_raw": Image(
                    header=hdr,
                    height=h,
                    width=w,
                    encoding="bgr8",
                    is_bigendian=0,
                    step=w * 3,
                    data=frame.image.reshape(-1),
                ),
                "/camera/camera_info": CameraInfo(
                    header=hdr,
                    height=h,
                    width=w,
                    distortion_model="plumb_bob",
                    d=np.zeros(5, np.float64),
                    k=k.reshape(-1),
                    r=np.eye(3).reshape(-1),
                    p=np.hstack([k, np.zeros((3, 1))]).reshape(-1),
                    binning_x=0,
                    binning_y=0,
                    roi=RoI(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
                ),
                "/ground_truth/detections": D2A(
                    header=hdr, detections=[detection(hdr, a) for a in frame.annotations]
                ),
                "/ground_truth/segmentation": Image(
                    header=hdr,
                    height=h,
                    width=w,
                    encoding="mono8",
                    is_bigendian=0,
                    step=w,
                    data=frame.mask.reshape(-1),
                ),
            }
            for topic, msg in msgs.items():
                writer.write(conns[topic], stamp_ns, store.serialize_cdr(msg, type(msg).__msgtype__))
