"""Frames of a video file as BGR arrays (OpenCV): the sample video for benchmarks and tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def video_frames(path: str | Path, count: int = 0, start: int = 0) -> list[np.ndarray]:
    """Up to ``count`` frames (0: all) of the video at ``path`` from frame ``start``: fewer where the
    video ends first, none where it cannot be opened."""
    cap = cv2.VideoCapture(str(path))
    try:
        if start:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        frames: list[np.ndarray] = []
        while cap.isOpened() and (not count or len(frames) < count):
            ok, img = cap.read()
            if not ok:
                break
            frames.append(img)
        return frames
    finally:
        cap.release()
