"""Camera calibration files in the ROS ``camera_calibration_parsers`` YAML format.

ROS-free: the camera bridge turns a ``CameraCalibration`` into ``sensor_msgs/CameraInfo``. The YAML is
what ``cameracalibrator`` writes (``image_width``, ``image_height``, ``camera_name``, ``camera_matrix``,
``distortion_model``, ``distortion_coefficients``, ``rectification_matrix``, ``projection_matrix``, each
matrix as ``{rows, cols, data}``). A calibration made at another resolution is scaled to the output
size (intrinsics and projection scale with the image; distortion and rectification do not).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml


class CalibrationError(ValueError):
    """A calibration file that is missing or does not hold a valid calibration."""


@dataclass(frozen=True)
class CameraCalibration:
    width: int
    height: int
    camera_name: str
    k: np.ndarray  # 3x3 intrinsics
    distortion_model: str
    d: np.ndarray  # distortion coefficients
    r: np.ndarray  # 3x3 rectification
    p: np.ndarray  # 3x4 projection

    def scaled(self, width: int, height: int) -> CameraCalibration:
        """The calibration for images resized to ``width`` x ``height``."""
        if (width, height) == (self.width, self.height):
            return self
        scale = np.diag([width / self.width, height / self.height, 1.0])
        return replace(self, width=width, height=height, k=scale @ self.k, p=scale @ self.p)


def _matrix(doc: dict[str, Any], key: str, shape: tuple[int, int], path: Path) -> np.ndarray:
    node = doc.get(key)
    if not isinstance(node, dict) or "data" not in node:
        raise CalibrationError(f"{path}: '{key}' missing or not a {{rows, cols, data}} matrix")
    data = np.asarray(node["data"], dtype=np.float64)
    rows, cols = int(node.get("rows", shape[0])), int(node.get("cols", shape[1]))
    if data.size != rows * cols or (shape[1] and (rows, cols) != shape):
        raise CalibrationError(f"{path}: '{key}' is {rows}x{cols} with {data.size} values, expected {shape}")
    return data.reshape(rows, cols) if shape[1] else data.reshape(-1)


def load_calibration(path: str | Path) -> CameraCalibration:
    """Read a ``camera_calibration_parsers`` YAML file; raises CalibrationError naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration file '{path}' not found")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CalibrationError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict):
        raise CalibrationError(f"{path}: expected a mapping with image_width, camera_matrix, ...")
    try:
        width, height = int(doc["image_width"]), int(doc["image_height"])
    except (KeyError, TypeError, ValueError):
        raise CalibrationError(f"{path}: image_width and image_height must be integers") from None
    if width <= 0 or height <= 0:
        raise CalibrationError(f"{path}: image size {width}x{height} is not positive")
    k = _matrix(doc, "camera_matrix", (3, 3), path)
    d = _matrix(doc, "distortion_coefficients", (1, 0), path)
    r = _matrix(doc, "rectification_matrix", (3, 3), path) if "rectification_matrix" in doc else np.eye(3)
    if "projection_matrix" in doc:
        p = _matrix(doc, "projection_matrix", (3, 4), path)
    else:
        p = np.hstack([k, np.zeros((3, 1))])
    return CameraCalibration(
        width=width,
        height=height,
        camera_name=str(doc.get("camera_name", "")),
        k=k,
        distortion_model=str(doc.get("distortion_model", "plumb_bob")),
        d=d,
        r=r,
        p=p,
    )
