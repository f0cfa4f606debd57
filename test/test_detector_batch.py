"""Batched detection: one engine call for N frames of different sizes gives what N single calls give,
with the sample detector (dynamic batch); a fixed-batch model refuses max_batch > 1 at construction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from detection_models import constant_model, yolov8_output

from trt_perception.inference.engine import EngineError
from trt_perception.inference.onnxruntime_backend import OnnxRuntimeEngine
from trt_perception.stages.detector import Detector, DetectorConfig
from trt_perception.vision.detections import Detections

ROOT = Path(__file__).resolve().parents[1]
DETECTOR = ROOT / "models" / "detector.onnx"


def scene_frames(sample_data: Any, count: int = 4) -> list[np.ndarray]:
    """Frames of the sample video (cars and plates in view), at four different sizes and shapes."""
    cap = cv2.VideoCapture(str(sample_data.video))
    frames = []
    for _ in range(count * 10):
        ok, img = cap.read()
        assert ok
        frames.append(img)
    cap.release()
    picked = frames[5::10][:count]
    sizes = [(1280, 720), (960, 540), (800, 600), (640, 720)]  # 16:9, smaller, 4:3 (bars), tall
    return [cv2.resize(f, sizes[i % len(sizes)]) for i, f in enumerate(picked)]


def assert_same(a: Detections, b: Detections) -> None:
    assert len(a) == len(b)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)


def test_engine_batch_equals_single_calls() -> None:
    engine = OnnxRuntimeEngine(DETECTOR)
    assert engine.batch_limits() == (1, None)
    x = np.random.default_rng(0).random((4, 3, 288, 512), dtype=np.float32)
    batched = engine.infer({"images": x})["output0"].copy()
    singles = np.concatenate([engine.infer({"images": x[i : i + 1]})["output0"].copy() for i in range(4)])
    assert batched.shape == (4, 6, 3024)
    np.testing.assert_allclose(batched, singles, atol=1e-4)


def test_detect_batch_equals_single_frames(sample_data: Any) -> None:
    frames = scene_frames(sample_data)
    single = Detector(DetectorConfig(model=str(DETECTOR)))
    expected = [single(f) for f in frames]
    assert all(len(d) for d in expected), "the sample frames show cars"
    batched = Detector(DetectorConfig(model=str(DETECTOR)), max_batch=4)
    for order in (frames, frames[::-1]):  # slots change size: their letterbox bars are rewritten
        got = batched.detect_batch(order)
        want = expected if order is frames else expected[::-1]
        for a, b in zip(got, want):
            assert_same(a, b)
    assert batched.latency.stats("inference").count == 2  # one engine call per batch
    # Single frames through the batch-capable stage are unchanged too.
    assert_same(batched(frames[2]), expected[2])


def test_detect_batch_chunks_by_max_batch(sample_data: Any) -> None:
    frames = scene_frames(sample_data)
    det = Detector(DetectorConfig(model=str(DETECTOR)), max_batch=3)
    got = det.detect_batch(frames + frames[:1])
    assert len(got) == 5 and det.latency.stats("inference").count == 2
    for a, f in zip(got, frames + frames[:1]):
        assert_same(a, det(f))


def test_fixed_batch_model_refuses_max_batch_at_construction(tmp_path: Path) -> None:
    out = yolov8_output(np.array([[320, 320, 100, 50]]), np.array([0]), np.array([0.9]), nc=2)
    model = constant_model(tmp_path / "fixed.onnx", {"output0": out}, input_shape=(1, 3, 640, 640))
    (tmp_path / "fixed_labels.txt").write_text("car\nplate\n")
    with pytest.raises(
        EngineError, match=r"4 frames per call requested, but input images\[1,3,640,640\].* at most 1"
    ):
        Detector(DetectorConfig(model=str(model)), max_batch=4)
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        Detector(DetectorConfig(model=str(model)), max_batch=0)
    # max_batch 1 (the default): a batch is one engine call per frame.
    det = Detector(DetectorConfig(model=str(model)))
    dets = det.detect_batch([np.zeros((640, 640, 3), np.uint8)] * 3)
    assert [d.names() for d in dets] == [["car"]] * 3
    assert det.latency.stats("inference").count == 3
