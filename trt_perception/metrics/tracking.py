"""Tracking and per-vehicle plate metrics: CLEAR MOT / identity scores (``motmetrics``: MOTA, IDF1, ID
switches, ...) of the tracked vehicles against ground truth with identities, and plate reading scored
both per reading (each frame's guess) and per vehicle (the text a track ends with).

Ground truth is COCO with ``track_id`` on car and plate annotations (``tools/synth/traffic.py``).
A vehicle counts for the plate scores when its plate was at least ``readable_px`` tall in at least
``readable_frames`` frames: far vehicles whose plate never gets readable are tracked, not read.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .plates import box_iou

MOT_METRICS = {
    "mota": "MOTA",
    "idf1": "IDF1",
    "num_switches": "id_switches",
    "motp": "MOTP_iou",
    "precision": "precision",
    "recall": "recall",
    "mostly_tracked": "mostly_tracked",
    "num_fragmentations": "fragmentations",
    "num_unique_objects": "gt_vehicles",
}


@dataclass
class TrackFrame:
    """One frame of a tracking run: the tracked vehicles (``ids``, ``boxes`` xyxy), each track's
    published plate text (consensus; absent until confident) and the plate readings made."""

    ids: np.ndarray
    boxes: np.ndarray
    texts: dict[int, str] = field(default_factory=dict)
    #: (plate box xyxy, text) of every reader output in this frame.
    readings: list[tuple[np.ndarray, str]] = field(default_factory=list)


@dataclass
class GtFrame:
    """Ground truth of a frame: vehicles (``ids``, ``boxes`` xyxy) and plates (box, text, vehicle)."""

    ids: np.ndarray
    boxes: np.ndarray
    plates: list[tuple[np.ndarray, str, int]] = field(default_factory=list)


def gt_frames(coco: dict[str, Any], image_ids: list[int], vehicle_category: int = 1) -> list[GtFrame]:
    """Per image (in ``image_ids`` order) the vehicles with ``track_id`` and their plates."""
    by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for a in coco.get("annotations", []):
        if a.get("track_id"):
            by_image[int(a["image_id"])].append(a)
    out = []
    for image_id in image_ids:
        anns = by_image.get(image_id, [])
        cars = [a for a in anns if a["category_id"] == vehicle_category]
        out.append(
            GtFrame(
                np.array([a["track_id"] for a in cars], np.int64),
                np.array([_xyxy(a["bbox"]) for a in cars], np.float64).reshape(-1, 4),
                [
                    (np.array(_xyxy(a["bbox"])), str(a["text"]), int(a["track_id"]))
                    for a in anns
                    if a.get("text")
                ],
            )
        )
    return out


def _xyxy(b: list[float]) -> list[float]:
    x, y, w, h = b
    return [x, y, x + w, y + h]


def mot_scores(
    gt: list[GtFrame], pred: list[TrackFrame], iou_threshold: float = 0.5
) -> tuple[dict[str, float], Any]:
    """CLEAR MOT and identity metrics of the vehicles (motmetrics), and its accumulator (events)."""
    import motmetrics as mm  # lazy: ~4 s to import (pandas), for tracking scores alone

    acc = mm.MOTAccumulator(auto_id=True)
    for g, p in zip(gt, pred):
        # motmetrics' own iou_matrix uses np.asfarray (gone in NumPy 2): distances are built here.
        iou = box_iou(g.boxes, p.boxes)
        dist = np.where(iou >= iou_threshold, 1.0 - iou, np.nan)
        acc.update(g.ids.tolist(), p.ids.tolist(), dist)
    summary = mm.metrics.create().compute(acc, metrics=list(MOT_METRICS), name="run")
    scores = {name: float(summary[key].iloc[0]) for key, name in MOT_METRICS.items()}
    scores["MOTP_iou"] = 1.0 - scores["MOTP_iou"]  # motmetrics reports the mean distance 1 - IoU
    return scores, acc


def readable_vehicles(
    gt: list[GtFrame], readable_px: float = 14.0, readable_frames: int = 5
) -> dict[int, str]:
    """Vehicle ID -> plate text, for vehicles whose plate was readable in enough frames."""
    counts: Counter[int] = Counter()
    text: dict[int, str] = {}
    for g in gt:
        for box, t, vid in g.plates:
            text[vid] = t
            counts[vid] += box[3] - box[1] >= readable_px
    return {vid: text[vid] for vid, n in counts.items() if n >= readable_frames}


def plate_scores(
    gt: list[GtFrame], pred: list[TrackFrame], acc: Any, vehicles: dict[int, str]
) -> dict[str, float]:
    """Per-vehicle exact match (the last text each vehicle's main track published; a vehicle never
    read counts as wrong) and the per-reading scores of ``reading_scores``."""
    final: dict[int, str] = {}
    for p in pred:
        final.update({k: v for k, v in p.texts.items() if v})
    events = acc.mot_events
    matched = events[events["Type"].isin(["MATCH", "SWITCH"])]
    main_track = {int(o): int(h.value_counts().idxmax()) for o, h in matched.groupby("OId")["HId"]}
    right = sum(final.get(main_track.get(vid, -1), "") == text for vid, text in vehicles.items())
    return {
        "vehicle_exact_match": right / len(vehicles) if vehicles else float("nan"),
        **reading_scores(gt, [p.readings for p in pred], vehicles),
    }


def reading_scores(
    gt: list[GtFrame], readings: list[list[tuple[np.ndarray, str]]], vehicles: dict[int, str]
) -> dict[str, float]:
    """Per-reading exact match: every reader output on a plate of ``vehicles`` (IoU >= 0.5), each
    frame's guess scored on its own; and how many readings there were per frame."""
    good = total = 0
    for g, rs in zip(gt, readings):
        plates = [(b, t) for b, t, vid in g.plates if vid in vehicles]
        if not plates or not rs:
            continue
        iou = box_iou(np.array([b for b, _ in plates]), np.array([b for b, _ in rs]))
        for j in range(len(rs)):
            i = int(iou[:, j].argmax())
            if iou[i, j] >= 0.5:
                total += 1
                good += rs[j][1] == plates[i][1]
    reads = sum(len(rs) for rs in readings)
    return {
        "frame_exact_match": good / total if total else float("nan"),
        "readable_vehicles": float(len(vehicles)),
        "readings": float(reads),
        "reads_per_frame": reads / max(len(readings), 1),
    }


def score_tracking(gt: list[GtFrame], pred: list[TrackFrame]) -> dict[str, float]:
    """``mot_scores`` and ``plate_scores`` in one flat dict."""
    scores, acc = mot_scores(gt, pred)
    scores.update(plate_scores(gt, pred, acc, readable_vehicles(gt)))
    return scores
