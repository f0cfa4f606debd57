"""Where evaluation frames and their ground truth come from: a COCO folder or a rosbag2.

Both give the same thing: ``frames()`` yields ``Frame`` objects (BGR image, stamp, COCO image id,
optional class mask and regression target) and ``coco`` is the COCO ground truth the detections and
plates are scored against. A bag's ground truth comes from a COCO JSON whose images carry
``stamp_ns`` (matched to the image header stamps) or from a ``vision_msgs/Detection2DArray`` topic
recorded in the bag (``class_id`` = category name, ``Detection2D.id`` = plate text).

A damaged bag does not abort the evaluation: the frames read before the damage are evaluated, and
``warnings`` carries the ``BagReadError`` text (how many messages were read and why it stopped).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..io.bags import Bag, BagReadError
from ..io.images import image_to_bgr, image_to_numpy
from ..io.stamps import stamp_ns


@dataclass
class Frame:
    index: int  # position in the evaluation order
    image_id: int  # COCO image id of its ground truth
    stamp_ns: int
    bgr: np.ndarray
    name: str = ""
    mask: np.ndarray | None = None  # ground-truth class indices (segmentation)
    target: np.ndarray | None = None  # ground-truth regression output (e.g. PilotNet (v, w))


@dataclass
class Source:
    """Base: ``coco`` ground truth, ``frames()``, human ``description``, ``warnings`` after a run."""

    description: str = ""
    coco: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    segmentation_classes: list[str] = field(default_factory=list)
    #: read ground-truth class masks with the frames (only segmentation needs them)
    load_masks: bool = True

    def frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.coco.get("images", []))

    def category_names(self) -> dict[int, str]:
        return {int(c["id"]): str(c["name"]) for c in self.coco.get("categories", [])}

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


def _target(image: dict[str, Any]) -> np.ndarray | None:
    for key in ("cmd", "target"):
        if key in image:
            return np.asarray(image[key], dtype=np.float64)
    return None


class CocoFolderSource(Source):
    """``annotations.json`` + an image folder (default: ``images/`` next to the JSON) and optional
    class masks (``masks/<image stem>.png``, mono8 class indices)."""

    def __init__(
        self,
        annotations: str | Path,
        images_dir: str | Path | None = None,
        masks_dir: str | Path | None = None,
        limit: int = 0,
    ) -> None:
        ann = Path(annotations)
        if ann.is_dir():
            ann = ann / "annotations.json"
        if not ann.is_file():
            raise FileNotFoundError(f"COCO annotations not found: {ann}")
        coco = json.loads(ann.read_text())
        images = sorted(coco.get("images", []), key=lambda im: im["id"])
        if limit > 0:
            keep = {im["id"] for im in images[:limit]}
            images = images[:limit]
            coco["annotations"] = [a for a in coco.get("annotations", []) if a["image_id"] in keep]
        coco["images"] = images
        self.images_dir = Path(images_dir) if images_dir else ann.parent / "images"
        default_masks = ann.parent / "masks"
        self.masks_dir = Path(masks_dir) if masks_dir else (default_masks if default_masks.is_dir() else None)
        super().__init__(
            description=f"COCO {ann} ({len(images)} images)",
            coco=coco,
            segmentation_classes=list(coco.get("segmentation_classes", [])),
        )

    def frames(self) -> Iterator[Frame]:
        for index, image in enumerate(self.coco["images"]):
            path = self.images_dir / image["file_name"]
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                self._warn(f"unreadable image skipped: {path}")
                continue
            mask = None
            if self.masks_dir is not None and self.load_masks:
                mask_path = self.masks_dir / (Path(image["file_name"]).stem + ".png")
                mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
                if mask is None:
                    self._warn(f"missing ground-truth mask: {mask_path}")
            yield Frame(
                index=index,
                image_id=int(image["id"]),
                stamp_ns=int(image.get("stamp_ns", 0)),
                bgr=bgr,
                name=str(image["file_name"]),
                mask=mask,
                target=_target(image),
            )


def detections_to_coco_gt(
    messages: Sequence[tuple[int, Any]], categories: Sequence[str] = ()
) -> tuple[dict[str, Any], dict[int, int]]:
    """COCO ground truth from ``(stamp_ns, vision_msgs/Detection2DArray)`` pairs.

    Returns the dataset and the stamp -> image id map. Category ids follow ``categories`` (1-based)
    and then the order new class names appear.
    """
    cats: dict[str, int] = {name: i for i, name in enumerate(categories, start=1)}
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    ids: dict[int, int] = {}
    for stamp, msg in messages:
        if stamp in ids:
            continue
        image_id = ids[stamp] = len(ids) + 1
        images.append({"id": image_id, "stamp_ns": stamp, "file_name": str(stamp), "width": 0, "height": 0})
        for det in msg.detections:
            label = det.results[0].hypothesis.class_id if len(det.results) else ""
            cat = cats.setdefault(label, len(cats) + 1)
            w, h = float(det.bbox.size_x), float(det.bbox.size_y)
            x = float(det.bbox.center.position.x) - w / 2
            y = float(det.bbox.center.position.y) - h / 2
            ann: dict[str, Any] = {
                "id": len(anns) + 1,
                "image_id": image_id,
                "category_id": cat,
                "bbox": [x, y, w, h],
                "area": w * h,
                "iscrowd": 0,
            }
            if det.id:
                ann["text"] = det.id
            anns.append(ann)
    categories_out = [{"id": i, "name": n} for n, i in sorted(cats.items(), key=lambda kv: kv[1])]
    return {"images": images, "annotations": anns, "categories": categories_out}, ids


class BagSource(Source):
    """Frames from ``image_topic`` of a rosbag2; ground truth from ``gt_json`` (COCO, images with
    ``stamp_ns``) or ``gt_topic`` (Detection2DArray); class masks from ``mask_topic`` (mono8)."""

    def __init__(
        self,
        bag: str | Path,
        image_topic: str = "/camera/image_raw",
        gt_json: str | Path | None = None,
        gt_topic: str | None = None,
        mask_topic: str | None = None,
        limit: int = 0,
        categories: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.bag_path = Path(bag)
        self.image_topic = image_topic
        self.mask_topic = mask_topic
        self.limit = limit
        with Bag(self.bag_path) as b:
            info = b.info
            b.require(image_topic)
            if mask_topic:
                b.require(mask_topic, "mask topic")
            if gt_json:
                self.coco = json.loads(Path(gt_json).read_text())
                self._ids = {
                    int(im["stamp_ns"]): int(im["id"]) for im in self.coco["images"] if "stamp_ns" in im
                }
                if not self._ids:
                    raise ValueError(f"{gt_json}: no image carries 'stamp_ns' to match the bag's frames")
                source = f"GT {gt_json}"
            elif gt_topic:
                b.require(gt_topic, "ground-truth topic")
                self.coco, self._ids = self._gt_from_topic(b, gt_topic, categories)
                source = f"GT topic {gt_topic}"
            else:
                self.coco, self._ids = {"images": [], "annotations": [], "categories": []}, {}
                source = "no detection GT"
        self.segmentation_classes = list(self.coco.get("segmentation_classes", []))
        self.description = f"rosbag2 {self.bag_path} [{info.storage}] {image_topic}, {source}"
        self._by_id = {int(im["id"]): im for im in self.coco.get("images", [])}

    def _gt_from_topic(
        self, bag: Bag, topic: str, categories: Sequence[str]
    ) -> tuple[dict[str, Any], dict[int, int]]:
        pairs: list[tuple[int, Any]] = []
        try:
            for _, msg in bag.decoded([topic]):
                pairs.append((stamp_ns(msg.header), msg))
        except BagReadError as exc:
            self._warn(f"ground truth: {exc}")
        return detections_to_coco_gt(pairs, categories)

    def __len__(self) -> int:
        n = len(self._ids) if self._ids else 0
        return min(n, self.limit) if self.limit > 0 else n

    def frames(self) -> Iterator[Frame]:
        mask_topic = self.mask_topic if self.load_masks else None
        topics = [self.image_topic] + ([mask_topic] if mask_topic else [])
        pending: dict[int, dict[str, Any]] = {}  # stamp -> {"image": ..., "mask": ...} waiting for its pair
        index = 0
        unmatched = 0
        auto_ids = not self._ids
        try:
            with Bag(self.bag_path) as bag:
                for m, msg in bag.decoded(topics):
                    stamp = stamp_ns(msg.header)
                    slot = pending.setdefault(stamp, {})
                    slot["mask" if m.topic == mask_topic else "image"] = msg
                    if "image" not in slot or (mask_topic and "mask" not in slot):
                        continue
                    del pending[stamp]
                    if auto_ids:
                        self._ids[stamp] = len(self._ids) + 1
                    image_id = self._ids.get(stamp)
                    if image_id is None:
                        unmatched += 1
                        continue
                    yield self._frame(index, image_id, stamp, slot)
                    index += 1
                    if 0 < self.limit <= index:
                        return
        except BagReadError as exc:
            self._warn(f"{exc}; the report covers the {index} frames read before it")
        finally:
            if unmatched:
                self._warn(f"{unmatched} bag frames had no ground truth with the same stamp and were skipped")
            if pending:
                self._warn(f"{len(pending)} frames lacked their image or mask pair and were skipped")

    def _frame(self, index: int, image_id: int, stamp: int, slot: dict[str, Any]) -> Frame:
        mask_msg = slot.get("mask")
        im = self._by_id.get(image_id, {})
        return Frame(
            index=index,
            image_id=image_id,
            stamp_ns=stamp,
            bgr=np.ascontiguousarray(image_to_bgr(slot["image"])),
            name=str(im.get("file_name", stamp)),
            mask=None if mask_msg is None else np.ascontiguousarray(image_to_numpy(mask_msg)),
            target=_target(im) if im else None,
        )
