"""Batches through the plate reader, segmenter and pilot give what frame-by-frame calls give (real
models); a model whose batch is fixed refuses a batch with an error naming its input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from test_detector_batch import scene_frames

from tools.train_detector import dynamic_batch
from trt_perception.inference.engine import EngineError
from trt_perception.stages.detector import Detector, DetectorConfig
from trt_perception.stages.pilot import Pilot, PilotConfig
from trt_perception.stages.plate_reader import PlateReader, PlateReaderConfig
from trt_perception.stages.segmenter import Segmenter, SegmenterConfig

MODELS = Path(__file__).resolve().parents[1] / "models"


def test_read_batch_equals_frame_by_frame(sample_data: Any) -> None:
    frames = scene_frames(sample_data)
    dets = Detector(DetectorConfig(model=str(MODELS / "detector.onnx")), max_batch=4).detect_batch(frames)
    reader = PlateReader(PlateReaderConfig(model=str(MODELS / "plate_reader_ctc.onnx")))
    alone = [reader(f, d) for f, d in zip(frames, dets)]
    calls = reader.latency.stats("inference").count
    together = reader.read_batch(frames, dets)
    assert sum(len(r) for r in alone) >= 4, "the sample frames show plates"
    assert reader.latency.stats("inference").count == calls + 1  # all crops of all frames: one call
    for a, b in zip(alone, together):
        assert [r.text for r in a] == [r.text for r in b]
        np.testing.assert_allclose([r.confidence for r in a], [r.confidence for r in b], atol=1e-5)


def test_segmenter_batch_needs_a_dynamic_batch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (360, 640, 3), np.uint8) for _ in range(3)]
    fixed = Segmenter(SegmenterConfig(model=str(MODELS / "segmenter.onnx")))
    with pytest.raises(EngineError, match=r"3 frames in one call, but input input\[1,3,\?,\?\].* at most 1"):
        fixed.segment_batch(frames, [1, 2, 3])
    m = onnx.load(str(MODELS / "segmenter.onnx"))
    dynamic_batch(m)  # the graph has no batch-1 reshape: the dims alone make it batchable
    onnx.save(m, str(tmp_path / "segmenter_batch.onnx"))
    seg = Segmenter(SegmenterConfig(model=str(tmp_path / "segmenter_batch.onnx")))
    got = seg.segment_batch(frames, [1, 2, 3])
    for frame, stamp, res in zip(frames, [1, 2, 3], got):
        want = fixed(frame, stamp)
        assert res.stamp_ns == stamp and res.mask.shape == (360, 640)
        assert (res.mask != want.mask).mean() < 1e-4  # float ties between batch and single kernels only
    with pytest.raises(ValueError, match="one network size"):
        seg.segment_batch([frames[0], np.zeros((720, 1280, 3), np.uint8)], [1, 2])


def test_pilot_batch_equals_frame_by_frame() -> None:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (480, 640, 3), np.uint8) for _ in range(5)]
    pilot = Pilot(PilotConfig(model=str(MODELS / "pilotnet.onnx")))
    alone = [pilot(f, i) for i, f in enumerate(frames)]
    together = pilot.drive_batch(frames, range(5))
    for a, b in zip(alone, together):
        assert a.stamp_ns == b.stamp_ns
        np.testing.assert_allclose((a.v, a.w), (b.v, b.w), atol=1e-4)
