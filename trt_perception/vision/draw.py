"""Annotated images: boxes, labels and plate texts drawn on a copy of the frame (OpenCV)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from .detections import Detections

_PALETTE = np.array(
    [
        (56, 56, 255),
        (151, 157, 255),
        (31, 112, 255),
        (29, 178, 255),
        (49, 210, 207),
        (10, 249, 72),
        (23, 204, 146),
        (134, 219, 61),
        (52, 147, 26),
        (187, 212, 0),
        (168, 153, 44),
        (255, 194, 0),
    ],
    np.uint8,
)


def color(class_id: int) -> tuple[int, int, int]:
    b, g, r = _PALETTE[class_id % len(_PALETTE)]
    return int(b), int(g), int(r)


def _label(img: np.ndarray, text: str, x: int, y: int, col: tuple[int, int, int], scale: float) -> None:
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    y = max(y, th + base)
    cv2.rectangle(img, (x, y - th - base), (x + tw, y), col, -1)
    cv2.putText(img, text, (x, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def draw_detections(bgr: np.ndarray, dets: Detections, copy: bool = True, scale: float = 0.5) -> np.ndarray:
    img = bgr.copy() if copy else bgr
    for i, (x1, y1, x2, y2) in enumerate(dets.boxes.astype(int).tolist()):
        col = color(int(dets.class_ids[i]))
        cv2.rectangle(img, (x1, y1), (x2, y2), col, 2)
        _label(img, f"{dets.label(i)} {dets.scores[i]:.2f}", x1, y1, col, scale)
    return img


def draw_readings(
    bgr: np.ndarray, readings: Sequence[Any], copy: bool = True, scale: float = 0.6
) -> np.ndarray:
    """Plate readings (``box``, ``text``, ``confidence``): the text above the box."""
    img = bgr.copy() if copy else bgr
    for r in readings:
        x1, y1, x2, y2 = (int(v) for v in r.box)
        cv2.rectangle(img, (x1, y1), (x2, y2), (0, 215, 255), 2)
        _label(img, f"{r.text} {r.confidence:.2f}", x1, y1 - 2, (0, 140, 255), scale)
    return img


def draw_tracks(
    bgr: np.ndarray, tracks: Any, plates: dict[int, Any] | None = None, copy: bool = True, scale: float = 0.5
) -> np.ndarray:
    """Tracked boxes (``Tracks``) coloured by track ID and labelled ``#ID label``, plus the vehicle's
    plate text (``plates``: track ID -> reading) when it is known."""
    img = bgr.copy() if copy else bgr
    plates = plates or {}
    dets = tracks.detections
    for i, (x1, y1, x2, y2) in enumerate(dets.boxes.astype(int).tolist()):
        track_id = int(tracks.ids[i])
        col = color(track_id)
        cv2.rectangle(img, (x1, y1), (x2, y2), col, 2)
        plate = plates.get(track_id)
        text = f"#{track_id} {dets.label(i)}" + (f" {plate.text}" if plate is not None and plate.text else "")
        _label(img, text, x1, y1, col, scale)
    return img


def draw_result(bgr: np.ndarray, result: Any) -> np.ndarray:
    """A pipeline result on a copy of its frame: the tracks with IDs and per-vehicle texts (or the
    detections when nothing is tracked), then the plates."""
    if result.tracks is not None:
        img = draw_tracks(bgr, result.tracks, result.plate_of())
    else:
        img = draw_detections(bgr, result.detections)
    return draw_readings(img, result.plates, copy=False)
