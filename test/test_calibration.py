"""camera_calibration_parsers YAML -> CameraCalibration, scaled to the published size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trt_perception.vision.calibration import CalibrationError, load_calibration

# What ROS's cameracalibrator writes (ost.yaml).
OST = """image_width: 640
image_height: 480
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [600.0, 0.0, 320.5, 0.0, 601.0, 240.5, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.3, 0.1, 0.001, -0.002, 0.0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
projection_matrix:
  rows: 3
  cols: 4
  data: [590.0, 0.0, 321.0, 0.0, 0.0, 595.0, 241.0, 0.0, 0.0, 0.0, 1.0, 0.0]
"""


def test_reads_cameracalibrator_output(tmp_path: Path) -> None:
    path = tmp_path / "ost.yaml"
    path.write_text(OST)
    cal = load_calibration(path)
    assert (cal.width, cal.height, cal.camera_name, cal.distortion_model) == (
        640,
        480,
        "narrow_stereo",
        "plumb_bob",
    )
    assert cal.k.shape == (3, 3) and cal.p.shape == (3, 4) and cal.d.shape == (5,)
    assert cal.k[0, 2] == 320.5 and cal.p[1, 1] == 595.0


def test_scaling_to_the_output_size(tmp_path: Path) -> None:
    path = tmp_path / "ost.yaml"
    path.write_text(OST)
    cal = load_calibration(path)
    half = cal.scaled(320, 240)
    np.testing.assert_allclose(half.k, [[300, 0, 160.25], [0, 300.5, 120.25], [0, 0, 1]])
    np.testing.assert_allclose(half.p[:, :3], [[295, 0, 160.5], [0, 297.5, 120.5], [0, 0, 1]])
    np.testing.assert_array_equal(half.d, cal.d)
    assert cal.scaled(640, 480) is cal


def test_projection_defaults_to_intrinsics(tmp_path: Path) -> None:
    path = tmp_path / "min.yaml"
    path.write_text(
        "image_width: 4\nimage_height: 2\ncamera_matrix: {rows: 3, cols: 3, data: [1, 0, 2, 0, 1, 1, 0, 0, 1]}\n"
        "distortion_coefficients: {rows: 1, cols: 0, data: []}\n"
    )
    cal = load_calibration(path)
    np.testing.assert_array_equal(cal.p[:, :3], cal.k)
    np.testing.assert_array_equal(cal.r, np.eye(3))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "not found"),
        ("image_width: [", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("image_width: x\nimage_height: 2\n", "must be integers"),
        ("image_width: 4\nimage_height: 2\n", "'camera_matrix' missing"),
        (
            "image_width: 4\nimage_height: 2\ncamera_matrix: {rows: 3, cols: 3, data: [1, 2]}\n",
            "'camera_matrix' is 3x3 with 2 values",
        ),
    ],
)
def test_errors_name_the_file_and_the_problem(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "cal.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(CalibrationError, match=message) as err:
        load_calibration(path)
    assert str(path) in str(err.value)
