"""The one camera -> stages loop (``pipeline/runner.py``) and the one camera-state -> status mapping."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from trt_perception.metrics.latency import LatencyRecorder
from trt_perception.pipeline.runner import PipelineRunner
from trt_perception.stages.camera import (
    CONNECTED,
    CONNECTING,
    ERROR,
    FAILED,
    FINISHED,
    OK,
    RECONNECTING,
    STOPPED,
    WARN,
    CameraConfig,
    CameraState,
    camera_status,
)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (CameraState(CONNECTED, "capturing"), (OK, "capturing")),
        (CameraState(FINISHED, "end", ever_connected=True), (OK, "end")),
        (CameraState(FINISHED, "end"), None),
        (CameraState(RECONNECTING, "lost"), (WARN, "lost")),
        (CameraState(FAILED, "gave up"), (ERROR, "gave up")),
        (CameraState(CONNECTING, "cannot open"), (ERROR, "cannot open")),
        (CameraState(CONNECTING), None),
        (CameraState(STOPPED, "stopped"), None),
    ],
)
def test_camera_status(state: CameraState, expected: tuple[int, str] | None) -> None:
    assert camera_status(state) == expected


class _Pipeline:
    """Stand-in for PerceptionPipeline: the mean pixel of each frame; fails on frame 1; flush gives 'end'."""

    def __init__(self) -> None:
        self.latency = LatencyRecorder()
        self.flushes = 0

    def __call__(self, bgr: np.ndarray, stamp_ns: int) -> Any:
        if int(bgr.mean()) == 1:
            raise ValueError("bad frame")
        return int(bgr.mean())

    def flush(self) -> list[str]:
        self.flushes += 1
        return ["end"]


def _folder(tmp_path: Path, n: int) -> str:
    for i in range(n):
        cv2.imwrite(str(tmp_path / f"f{i:02d}.png"), np.full((8, 8, 3), i, np.uint8))
    return str(tmp_path)


@pytest.mark.parametrize("mode", ["caller", "inline", "worker"])
def test_runner_feeds_every_frame_reports_errors_and_flushes_once(tmp_path: Path, mode: str) -> None:
    pipeline = _Pipeline()
    results: list[int] = []
    errors: list[str] = []
    ends: list[tuple[str, list[str]]] = []
    runner = PipelineRunner(
        pipeline,  # type: ignore[arg-type]
        CameraConfig(source=_folder(tmp_path, 4), lossless=True),
        lambda frame, result: results.append(result),
        lambda exc: errors.append(str(exc)),
        lambda state, events: ends.append((state.status, events)),
    )
    runner.start(inline=mode == "inline", worker=mode == "worker")
    if mode == "caller":
        runner.run()
    while runner.running:  # inline: the capture thread works; worker: its thread does
        time.sleep(0.01)
    assert not runner.poll()  # the node's status timer sees the end (and flushes once)
    runner.finish()
    runner.stop()
    assert results == [0, 2, 3] and errors == ["bad frame"] and runner.frames == 4
    assert ends == [(FINISHED, ["end"])] and pipeline.flushes == 1
