"""Multi-camera pipeline with the real sample models: each camera's results in a batch equal its
results when run alone (boxes, track IDs, plate texts and events), with cameras of different frame
sizes and batches that miss a camera; a camera that stops or never delivers does not stall the others."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from trt_perception.inference.engine import EngineError
from trt_perception.pipeline.multi_camera import BatchResult, MultiCameraPipeline, MultiCameraRunner
from trt_perception.pipeline.muxer import MuxSource, SourceFrame
from trt_perception.pipeline.perception import PerceptionPipeline, PipelineResult
from trt_perception.stages.camera import FAILED, FINISHED, CameraConfig
from trt_perception.stages.detector import DetectorConfig
from trt_perception.stages.plate_reader import PlateReaderConfig
from trt_perception.stages.tracker import TrackerConfig

MODELS = Path(__file__).resolve().parents[1] / "models"
DET = DetectorConfig(model=str(MODELS / "detector.onnx"))
READER = PlateReaderConfig(model=str(MODELS / "plate_reader_ctc.onnx"))
#: Three cameras on the sample video: different start frames and sizes (16:9 720p, 540p, 4:3 with bars).
CAMERAS = ((0, (1280, 720)), (60, (960, 540)), (120, (800, 600)))


def camera_frames(video: Path, start: int, size: tuple[int, int], count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = []
    for _ in range(count):
        ok, img = cap.read()
        assert ok
        frames.append(cv2.resize(img, size))
    cap.release()
    return frames


def same_result(a: PipelineResult, b: PipelineResult) -> None:
    assert len(a.detections) == len(b.detections)
    np.testing.assert_allclose(a.detections.boxes, b.detections.boxes, atol=1e-3)
    np.testing.assert_array_equal(a.detections.class_ids, b.detections.class_ids)
    assert a.tracks is not None and b.tracks is not None
    np.testing.assert_array_equal(a.tracks.ids, b.tracks.ids)
    assert [(p.track_id, p.text) for p in a.plates] == [(p.track_id, p.text) for p in b.plates]  # type: ignore[union-attr]
    assert [(e.kind, e.track_id, e.text) for e in a.events] == [
        (e.kind, e.track_id, e.text) for e in b.events
    ]
    assert [t for _, t in a.readings] == [t for _, t in b.readings]


@pytest.mark.slow
def test_each_camera_in_a_batch_equals_the_camera_alone(sample_data: Any) -> None:
    steps = 40
    feeds = [camera_frames(sample_data.video, start, size, steps) for start, size in CAMERAS]
    tracker = TrackerConfig()
    alone = []
    for frames in feeds:
        single = PerceptionPipeline.build(DET, READER, tracker=tracker)
        alone.append([single(f, 1000 + k) for k, f in enumerate(frames)])
    multi = MultiCameraPipeline.build(len(CAMERAS), DET, READER, tracker=tracker)
    got: list[list[PipelineResult]] = [[] for _ in CAMERAS]
    sizes = []
    for k in range(steps):
        # Camera 2 misses every third batch (a slower camera): it is then simply not in the batch.
        cams = [c for c in range(len(CAMERAS)) if c != 2 or k % 3]
        batch = [SourceFrame(c, f"cam{c}", "", feeds[c][k], 1000 + k) for c in cams]
        out = multi(batch)
        sizes.append(out.stats.size)
        assert [r.source for r in out.cameras] == cams
        for r in out.cameras:
            got[r.source].append(r.result)
    assert multi.detector.latency.stats("detector.inference").count == steps  # one detector call a batch
    assert set(sizes) == {2, 3}
    reads = 0
    for c in range(len(CAMERAS)):
        # Camera 2 alone, on the frames it delivered.
        want = alone[c] if c != 2 else None
        if want is None:
            single = PerceptionPipeline.build(DET, READER, tracker=tracker)
            want = [single(feeds[2][k], 1000 + k) for k in range(steps) if k % 3]
        assert len(got[c]) == len(want)
        for a, b in zip(got[c], want):
            same_result(a, b)
            reads += a.reads
    assert reads > 10, "the sample video shows plates to read"
    assert any(p.text for cam in got for r in cam for p in r.plates), (
        "some vehicle's plate reaches a consensus"
    )
    flushed = multi.flush(0)
    assert all(e.kind == "ended" for e in flushed)


def test_without_tracker_every_plate_is_read_as_alone(sample_data: Any) -> None:
    feeds = [camera_frames(sample_data.video, start, size, 3) for start, size in CAMERAS[:2]]
    multi = MultiCameraPipeline.build(2, DET, READER)
    single = PerceptionPipeline.build(DET, READER)
    for k in range(3):
        out = multi([SourceFrame(c, f"cam{c}", "", feeds[c][k], k) for c in range(2)])
        for cam in out.cameras:
            alone = single(feeds[cam.source][k], k)
            assert cam.result.tracks is None and cam.result.reads == alone.reads
            assert [p.text for p in cam.result.plates] == [p.text for p in alone.plates]
    assert out.stats.plate_crops == sum(c.result.reads for c in out.cameras) > 0


def test_fixed_batch_detector_is_refused_at_build(tmp_path: Path) -> None:
    from detection_models import constant_model, yolov8_output

    out = yolov8_output(np.array([[320, 320, 100, 50]]), np.array([0]), np.array([0.9]), nc=2)
    model = constant_model(tmp_path / "fixed.onnx", {"output0": out}, input_shape=(1, 3, 640, 640))
    with pytest.raises(EngineError, match="2 frames per call requested"):
        MultiCameraPipeline.build(2, DetectorConfig(model=str(model)))


def test_a_stopped_or_silent_camera_does_not_stall_the_others(sample_data: Any, tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.mkdir()
    for i, img in enumerate(camera_frames(sample_data.video, 0, (640, 360), 3)):
        cv2.imwrite(str(short / f"{i:03d}.jpg"), img)
    cameras = [
        CameraConfig(source=str(sample_data.video), rate_hz=15, loop=True),
        CameraConfig(source=str(sample_data.video), rate_hz=15, loop=True, width=960),
        CameraConfig(source=str(short), rate_hz=15),  # three frames, then finished
        CameraConfig(source="/dev/video97", reconnect_delay_s=0.2, reconnect_attempts=2),  # never opens
    ]
    names = [MuxSource(n, f"{n}_optical") for n in ("front", "rear", "short", "dead")]
    pipeline = MultiCameraPipeline.build(len(cameras), DET, READER, tracker=TrackerConfig())
    pipeline.warmup()
    batches: list[BatchResult] = []
    ended: list[tuple[int, str]] = []
    runner = MultiCameraRunner(
        pipeline,
        cameras,
        batches.append,
        names,
        timeout_s=0.1,
        on_end=lambda i, s, e: ended.append((i, s.status)),
    )
    runner.start(worker=True)
    time.sleep(3.0)
    stopped_ns = time.time_ns()
    runner.stop()
    per_camera = {n.name: 0 for n in names}
    newest = {n.name: 0 for n in names}
    for b in batches:
        for r in b.cameras:
            per_camera[r.name] += 1
            newest[r.name] = max(newest[r.name], r.result.stamp_ns)
            assert r.frame_id == f"{r.name}_optical"
    # Every frame of the short camera is processed or counted as dropped (replaced before its batch).
    assert per_camera["short"] + runner.muxer.drops[2] == 3 and per_camera["short"] >= 1
    assert per_camera["dead"] == 0
    # The live cameras keep going whatever the two others do: results up to the end (frames the busy
    # 2-core machine cannot keep up with are dropped, counted, not queued).
    for cam in (0, 1):
        name = names[cam].name
        assert per_camera[name] >= 10 and runner.muxer.pushed[cam] >= 30, (per_camera, runner.muxer.pushed)
        assert stopped_ns - newest[name] < 0.5e9, "the last results are recent: nothing stalled"
    assert (2, FINISHED) in ended and (3, FAILED) in ended
    assert max(b.stats.size for b in batches) >= 2 and all(b.stats.size <= 3 for b in batches)
    assert runner.muxer.pushed[3] == 0


def test_paused_runner_reads_the_cameras_and_runs_no_stage(sample_data: Any) -> None:
    """``enabled()`` false: the cameras stay open (their frames counted in ``paused_drops``), no batch
    reaches the detector; true: batches flow again. The cameras' state lines go to ``log``."""
    cameras = [CameraConfig(source=str(sample_data.video), rate_hz=15, loop=True)] * 2
    pipeline = MultiCameraPipeline.build(len(cameras), DET)
    batches: list[BatchResult] = []
    lines: list[tuple[int, str]] = []
    enabled = [False]
    runner = MultiCameraRunner(
        pipeline,
        cameras,
        batches.append,
        enabled=lambda: enabled[0],
        log=lambda level, line: lines.append((level, line)),
    )
    runner.start(worker=True)
    try:
        deadline = time.monotonic() + 30
        while min(runner.paused_drops) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert min(runner.paused_drops) >= 5 and not batches
        assert pipeline.latency.stats("detector.inference") is None  # the detector never ran
        enabled[0] = True
        while len(batches) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(batches) >= 3
    finally:
        runner.stop()
    assert sum(": connected: " in line for _, line in lines) == 2, lines
