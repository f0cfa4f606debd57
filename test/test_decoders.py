"""Every decoder format against hand-built tensors, through the Detector stage on tiny constant ONNX
models (so model binding, mismatch errors and the letterbox undo are exercised end to end)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from detection_models import constant_model, yolov8_output

from trt_perception.inference.engine import TensorSpec
from trt_perception.stages.detector import Detector, DetectorConfig
from trt_perception.vision.decoder import DecoderMismatchError
from trt_perception.vision.decoder_registry import make_decoder

LABELS = ["car", "plate"]
FRAME = np.zeros((720, 1280, 3), np.uint8)  # letterboxed into 640x640: scale 0.5, pad_y 140


def labels_file(tmp_path: Path) -> str:
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(LABELS) + "\n")
    return str(path)


def to_net(box_src: list[float]) -> list[float]:
    """Source pixels -> 640x640 letterboxed network pixels (xyxy)."""
    x1, y1, x2, y2 = box_src
    return [x1 * 0.5, y1 * 0.5 + 140, x2 * 0.5, y2 * 0.5 + 140]


def detect(tmp_path: Path, outputs: dict[str, np.ndarray], decoder: str, **cfg: object) -> Detector:
    model = constant_model(tmp_path / "m.onnx", outputs, input_shape=cfg.pop("input_shape", (1, 3, 640, 640)))  # type: ignore[arg-type]
    return Detector(DetectorConfig(model=str(model), decoder=decoder, labels=labels_file(tmp_path), **cfg))  # type: ignore[arg-type]


CAR, PLATE = [100.0, 200.0, 500.0, 480.0], [250.0, 400.0, 350.0, 430.0]


def cxcywh(box: list[float]) -> list[float]:
    x1, y1, x2, y2 = box
    return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]


def test_yolov8(tmp_path: Path) -> None:
    # The car twice (a duplicate NMS must remove), the plate once, one candidate under threshold.
    boxes = np.array([cxcywh(to_net(CAR)), cxcywh(to_net(CAR)), cxcywh(to_net(PLATE)), [50, 50, 10, 10]])
    out = yolov8_output(boxes, np.array([0, 0, 1, 1]), np.array([0.9, 0.85, 0.8, 0.1]), nc=2)
    dets = detect(tmp_path, {"output0": out}, "yolov8")(FRAME)
    assert dets.names() == ["car", "plate"]
    np.testing.assert_allclose(dets.boxes, [CAR, PLATE], atol=0.01)
    np.testing.assert_allclose(dets.scores, [0.9, 0.8], atol=1e-6)


def test_yolov8_class_filter_and_cap(tmp_path: Path) -> None:
    boxes = np.array([cxcywh(to_net(CAR)), cxcywh(to_net(PLATE))])
    out = yolov8_output(boxes, np.array([0, 1]), np.array([0.9, 0.8]), nc=2)
    assert detect(tmp_path, {"output0": out}, "yolov8", classes=["plate"])(FRAME).names() == ["plate"]
    assert len(detect(tmp_path, {"output0": out}, "yolov8", max_detections=1)(FRAME)) == 1


def test_yolov5_objectness(tmp_path: Path) -> None:
    rows = np.zeros((1, 6300, 7), np.float32)
    rows[0, 0] = [*cxcywh(to_net(CAR)), 0.95, 0.9, 0.1]  # score = 0.95 * 0.9
    rows[0, 1] = [*cxcywh(to_net(PLATE)), 0.9, 0.0, 0.9]
    rows[0, 2] = [*cxcywh(to_net(PLATE)), 0.2, 0.0, 1.0]  # low objectness: dropped
    dets = detect(tmp_path, {"output0": rows}, "yolov5")(FRAME)
    assert dets.names() == ["car", "plate"]
    np.testing.assert_allclose(dets.scores, [0.855, 0.81], atol=1e-5)
    np.testing.assert_allclose(dets.boxes, [CAR, PLATE], atol=0.01)


def test_yolox_grid_decoding(tmp_path: Path) -> None:
    # YOLOX letterbox is top-left: 1280x720 -> scale 0.5, no padding offset.
    n = 80 * 80 + 40 * 40 + 20 * 20
    rows = np.zeros((1, n, 7), np.float32)
    # Car centre (150, 170) net px at stride 32: cell (4, 5) -> index 6400+1600 + 5*20+4, offset 0.6875/0.3125.
    i = 6400 + 1600 + 5 * 20 + 4
    rows[0, i] = [150 / 32 - 4, 170 / 32 - 5, np.log(200 / 32), np.log(140 / 32), 0.9, 1.0, 0.0]
    dets = detect(tmp_path, {"output": rows}, "yolox", preprocess="yolox")(FRAME)
    np.testing.assert_allclose(dets.boxes, [[100, 200, 500, 480]], atol=0.05)
    assert dets.names() == ["car"]


def test_ssd_tf_outputs(tmp_path: Path) -> None:
    outputs = {
        "detection_boxes": np.array(
            [[[0.25, 0.1, 0.75, 0.5], [0.5, 0.5, 0.6, 0.7], [0, 0, 1, 1]]], np.float32
        ),
        "detection_scores": np.array([[0.9, 0.6, 0.1]], np.float32),
        "detection_classes": np.array([[1.0, 0.0, 1.0]], np.float32),
        "num_detections": np.array([2.0], np.float32),
    }
    # TF OD API: uint8 NHWC input, plain resize, boxes normalised (ymin, xmin, ymax, xmax).
    det = detect(tmp_path, outputs, "ssd_tf", preprocess="ssd_tf", input_shape=(1, 300, 300, 3))
    assert det.preprocessor.config.layout == "NHWC"
    dets = det(FRAME)
    np.testing.assert_allclose(dets.boxes, [[128, 180, 640, 540], [640, 360, 896, 432]], atol=0.01)
    assert dets.names() == ["plate", "car"]


def test_trt_nms_plugin_layout(tmp_path: Path) -> None:
    rows = np.zeros((1, 1, 100, 7), np.float32)
    rows[0, 0, 0] = [0, 1, 0.8, 0.1, 0.25, 0.5, 0.75]
    rows[0, 0, 1] = [0, 0, 0.05, 0, 0, 1, 1]  # under threshold
    rows[0, 0, 2:] = [-1, 0, 0, 0, 0, 0, 0]
    dets = detect(tmp_path, {"nms": rows}, "trt_nms", preprocess="ssd_tf", input_shape=(1, 3, 300, 300))(
        FRAME
    )
    np.testing.assert_allclose(dets.boxes, [[128, 180, 640, 540]], atol=0.01)
    assert dets.names() == ["plate"]


def test_efficient_nms_outputs(tmp_path: Path) -> None:
    outputs = {
        "num_detections": np.array([[2]], np.int32),
        "detection_boxes": np.array([[to_net(CAR), to_net(PLATE), [0, 0, 1, 1]]], np.float32),
        "detection_scores": np.array([[0.7, 0.9, 0.99]], np.float32),
        "detection_classes": np.array([[0, 1, 0]], np.int32),
    }
    dets = detect(tmp_path, outputs, "efficient_nms")(FRAME)
    assert dets.names() == ["plate", "car"]  # best first
    np.testing.assert_allclose(dets.boxes, [PLATE, CAR], atol=0.01)


def test_mismatch_fails_at_startup_naming_tensors(tmp_path: Path) -> None:
    v5 = np.zeros((1, 6300, 7), np.float32)
    with pytest.raises(DecoderMismatchError, match=r"yolov8.*\[1, 4\+nc, N\].*output0\[1,6300,7\]"):
        detect(tmp_path, {"output0": v5}, "yolov8")
    v8 = yolov8_output(np.zeros((0, 4)), np.zeros(0, int), np.zeros(0), nc=3)
    with pytest.raises(DecoderMismatchError, match="3 classes but the labels list 2"):
        detect(tmp_path, {"output0": v8}, "yolov8")
    with pytest.raises(DecoderMismatchError, match=r"ssd_tf.*no output named like"):
        detect(tmp_path, {"output0": v8}, "ssd_tf")
    with pytest.raises(DecoderMismatchError, match="last dimension of 7"):
        make_decoder("trt_nms").bind([TensorSpec("out", (1, 100, 6))], 300, 300)
    with pytest.raises(ValueError, match="unknown decoder"):
        make_decoder("yolov99")


def test_empty_output_gives_empty_detections(tmp_path: Path) -> None:
    out = yolov8_output(np.zeros((0, 4)), np.zeros(0, int), np.zeros(0), nc=2)
    dets = detect(tmp_path, {"output0": out}, "yolov8")(FRAME)
    assert len(dets) == 0 and dets.boxes.shape == (0, 4)


def test_yolo_end2end_rows(tmp_path: Path) -> None:
    rows = np.zeros((1, 300, 6), np.float32)
    rows[0, 0] = [*to_net(PLATE), 0.8, 1]
    rows[0, 1] = [*to_net(CAR), 0.9, 0]
    dets = detect(tmp_path, {"output0": rows}, "yolo_end2end")(FRAME)
    assert dets.names() == ["car", "plate"]
    np.testing.assert_allclose(dets.boxes, [CAR, PLATE], atol=0.01)
