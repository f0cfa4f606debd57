"""ROS-free core of the live scorer: collect a running pipeline's outputs by stamp and score them
against a bag's ground truth into the same report ``trt-perception evaluate`` writes.

Latency here is what a robot sees: the time from an image arriving at the scorer to the pipeline's
output for that stamp arriving (transport + queueing + the whole node chain), not engine time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..metrics.coco import DEFAULT_CONF_THRESHOLD, detections_to_coco
from ..metrics.plates import match_readings
from ..metrics.segmentation import confusion_matrix
from .runner import ConfigResult, EvalResult
from .sources import BagSource, Source
from .tasks import DetectionTask, EvalConfig, PlatesTask, SegmentationTask, Task


@dataclass
class _Stream:
    outputs: dict[int, Any] = field(default_factory=dict)  # image id -> task output
    arrival: dict[int, float] = field(default_factory=dict)  # stamp -> monotonic arrival time
    unmatched: int = 0


class LiveScorer:
    """Thread-safe collector. ``add_*`` take the header stamp (ns) and the arrival time (s, monotonic)."""

    def __init__(
        self,
        source: Source,
        tasks: list[str],
        conf_threshold: float = DEFAULT_CONF_THRESHOLD,
        name: str = "live pipeline",
    ) -> None:
        self.source = source
        self.name = name
        self._ids = {
            int(im["stamp_ns"]): int(im["id"]) for im in source.coco.get("images", []) if "stamp_ns" in im
        }
        self._lock = threading.Lock()
        self.images: dict[int, float] = {}
        self.tasks: dict[str, Task] = {}
        for t in tasks:
            task: Task
            if t == "detection":
                task = DetectionTask(conf_threshold)
            elif t == "plates":
                task = PlatesTask()
            elif t == "segmentation":
                task = SegmentationTask()
            else:
                raise ValueError(f"live scoring supports detection, plates, segmentation; not '{t}'")
            task.bind(source)
            self.tasks[t] = task
        self.streams = {t: _Stream() for t in self.tasks}
        self._gt_masks: dict[int, np.ndarray] = {}

    @property
    def expected_frames(self) -> int:
        return len(self._ids)

    def set_gt_masks(self, masks: dict[int, np.ndarray]) -> None:
        """Ground-truth class masks by stamp (segmentation)."""
        self._gt_masks = masks

    def add_image(self, stamp_ns: int, t: float) -> None:
        with self._lock:
            self.images.setdefault(stamp_ns, t)

    def _put(self, task: str, stamp_ns: int, t: float, value: Any) -> bool:
        s = self.streams[task]
        image_id = self._ids.get(stamp_ns)
        if image_id is None:
            s.unmatched += 1
            return False
        s.outputs[image_id] = value
        s.arrival[stamp_ns] = t
        return True

    def add_detections(
        self, stamp_ns: int, t: float, boxes: np.ndarray, scores: np.ndarray, labels: list[str]
    ) -> None:
        task = self.tasks["detection"]
        assert isinstance(task, DetectionTask)
        cats = np.array([task.categories.get(lbl, -1) for lbl in labels], dtype=np.int64)
        keep = cats > 0
        with self._lock:
            image_id = self._ids.get(stamp_ns, -1)
            self._put(
                "detection",
                stamp_ns,
                t,
                detections_to_coco(image_id, np.asarray(boxes)[keep], np.asarray(scores)[keep], cats[keep]),
            )

    def add_plates(self, stamp_ns: int, t: float, boxes: np.ndarray, texts: list[str]) -> None:
        task = self.tasks["plates"]
        assert isinstance(task, PlatesTask)
        with self._lock:
            image_id = self._ids.get(stamp_ns, -1)
            gt = task.gt_plates.get(image_id, [])
            gt_boxes = np.array([b for b, _ in gt]).reshape(-1, 4)
            self._put(
                "plates", stamp_ns, t, match_readings(gt_boxes, np.asarray(boxes).reshape(-1, 4), texts)
            )

    def add_mask(self, stamp_ns: int, t: float, mask: np.ndarray) -> None:
        task = self.tasks["segmentation"]
        assert isinstance(task, SegmentationTask)
        gt = self._gt_masks.get(stamp_ns)
        if gt is None:
            with self._lock:
                self.streams["segmentation"].unmatched += 1
            return
        if mask.shape != gt.shape:
            mask = cv2.resize(mask, gt.shape[::-1], interpolation=cv2.INTER_NEAREST)
        cm = confusion_matrix(gt, mask, task.num_classes)
        with self._lock:
            self._put("segmentation", stamp_ns, t, cm)

    def received(self) -> int:
        with self._lock:
            return max((len(s.outputs) for s in self.streams.values()), default=0)

    def result(self, task_name: str) -> EvalResult:
        """The report data for one task (one configuration: the live pipeline)."""
        task = self.tasks[task_name]
        with self._lock:
            s = self.streams[task_name]
            outputs = dict(s.outputs)
            pairs = [(t - self.images[st]) * 1e3 for st, t in s.arrival.items() if st in self.images]
            unmatched = s.unmatched
            missing = len(self._ids) - len(outputs)
        # A small result can reach this node before the large image it came from (DDS delivers the two
        # topics independently): its latency is not measurable here, so it is counted, not reported as
        # a negative or zero latency.
        lat = np.array([ms for ms in pairs if ms >= 0.0])
        cfg = EvalConfig(self.name, Path("live"), "ros", "-")
        r = ConfigResult(cfg, frames=len(outputs), end_to_end_ms=lat, outputs=outputs)
        if outputs:
            r.scores = task.score(self.source, outputs)
        warnings = list(self.source.warnings)
        if missing > 0:
            warnings.append(
                f"{missing} of {len(self._ids)} ground-truth frames got no {task_name} output (dropped "
                "or not yet processed); the scores cover the frames that did"
            )
        if len(lat) < len(pairs):
            warnings.append(
                f"{len(pairs) - len(lat)} {task_name} outputs arrived before their image: left out of the "
                "latency (image arrival -> output arrival at this node)"
            )
        if unmatched:
            warnings.append(f"{unmatched} {task_name} messages had a stamp with no ground truth")
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return EvalResult(task, self.source, [r], self.name, started, len(outputs), warnings)


def bag_ground_truth_masks(bag: BagSource, limit: int = 0) -> dict[int, np.ndarray]:
    """stamp -> GT mask from a bag source with a mask topic (kept for the scorer's lookups)."""
    out: dict[int, np.ndarray] = {}
    for f in bag.frames():
        if f.mask is not None:
            out[f.stamp_ns] = f.mask
        if 0 < limit <= len(out):
            break
    return out
