"""CameraSource (ROS-free): every frame of folders and files in order, rate cap, resize, loop,
newest-frame hand-over for live sources, and reconnect with backoff when a source disappears."""

from __future__ import annotations

import itertools
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from mjpeg_server import MjpegServer

from trt_perception.stages.camera import (
    CONNECTED,
    CONNECTING,
    DEVICE,
    FAILED,
    FILE,
    FINISHED,
    FOLDER,
    GSTREAMER,
    RECONNECTING,
    URL,
    CameraConfig,
    CameraError,
    CameraSource,
    device_index,
    open_source,
    output_size,
)


def _frame(i: int, w: int = 64, h: int = 48) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def png_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(12):
        cv2.imwrite(str(folder / f"frame_{i:04d}.png"), _frame(i))
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 50, (64, 48))
    for i in range(40):
        writer.write(np.full((48, 64, 3), i * 6, np.uint8))
    writer.release()
    return path


def _drain(cam: CameraSource, limit: int = 1000, timeout: float = 2.0) -> list:
    frames = []
    while len(frames) < limit and (f := cam.read(timeout)) is not None:
        frames.append(f)
    return frames


def test_kind_guessing(png_folder: Path, video: Path) -> None:
    assert CameraConfig(source="0").resolved_kind() == DEVICE
    assert CameraConfig(source="/dev/video2").resolved_kind() == DEVICE
    assert CameraConfig(source=str(video)).resolved_kind() == FILE
    assert CameraConfig(source=str(png_folder)).resolved_kind() == FOLDER
    assert CameraConfig(source=str(png_folder / "*.png")).resolved_kind() == FOLDER
    assert CameraConfig(source="rtsp://cam.local/stream").resolved_kind() == URL
    assert CameraConfig(source="nvarguscamerasrc ! nvvidconv ! appsink").resolved_kind() == GSTREAMER
    with pytest.raises(CameraError, match="unknown camera source kind"):
        CameraConfig(source="x", kind="webcam").resolved_kind()
    assert (device_index("3"), device_index("/dev/video7"), device_index("/nonexistent")) == (3, 7, -1)


def test_folder_frames_pixel_exact_in_order(png_folder: Path) -> None:
    with CameraSource(CameraConfig(source=str(png_folder))) as cam:
        frames = _drain(cam)
        assert cam.state.status == FINISHED
    assert [f.seq for f in frames] == list(range(12))
    assert [f.index for f in frames] == list(range(12))
    assert [Path(f.path).name for f in frames] == [f"frame_{i:04d}.png" for i in range(12)]
    for i, f in enumerate(frames):
        np.testing.assert_array_equal(f.image, _frame(i))
    assert all(a.stamp_ns < b.stamp_ns for a, b in itertools.pairwise(frames))
    assert frames[-1].dropped == 0


def test_glob_pattern_selects_and_sorts(png_folder: Path) -> None:
    cam = open_source(str(png_folder / "frame_000*.png"))
    try:
        assert [f.index for f in _drain(cam)] == list(range(10))
    finally:
        cam.stop()


def test_video_delivers_every_frame_at_its_rate(video: Path) -> None:
    start = time.monotonic()
    with CameraSource(CameraConfig(source=str(video))) as cam:
        frames = _drain(cam)
        assert cam.state.source_fps == pytest.approx(50.0)
    elapsed = time.monotonic() - start
    assert len(frames) == 40
    assert [f.index for f in frames] == list(range(40))
    assert 0.6 < elapsed < 5.0  # 40 frames at 50 fps: paced, not as fast as decoding


def test_rate_cap_resize_and_loop(video: Path) -> None:
    cfg = CameraConfig(source=str(video), rate_hz=100.0, width=32, loop=True)
    with CameraSource(cfg) as cam:
        start = time.monotonic()
        frames = _drain(cam, limit=100)
        elapsed = time.monotonic() - start
    assert len(frames) == 100  # looped past the 40-frame end
    assert [f.index for f in frames[38:43]] == [38, 39, 0, 1, 2]
    assert frames[0].image.shape == (24, 32, 3)  # width 32, aspect kept
    assert elapsed > 0.85  # 100 frames at most 100 Hz


def test_output_size() -> None:
    assert output_size(1280, 720, 0, 0) == (1280, 720)
    assert output_size(1280, 720, 640, 0) == (640, 360)
    assert output_size(1280, 720, 0, 360) == (640, 360)
    assert output_size(1280, 720, 300, 300) == (300, 300)


def test_slow_consumer_gets_the_newest_frame_and_drops_are_counted(video: Path) -> None:
    cfg = CameraConfig(source=str(video), rate_hz=200.0, lossless=False)
    with CameraSource(cfg) as cam:
        first = cam.read(2.0)
        time.sleep(0.1)  # ~20 frames go by
        second = cam.read(2.0)
    assert first is not None and second is not None
    assert second.seq > first.seq
    assert second.index - first.index > 5
    assert second.dropped >= 5


def test_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="not found"):
        CameraSource(CameraConfig(source=str(tmp_path / "missing.mp4"))).start()
    (tmp_path / "empty").mkdir()
    with pytest.raises(CameraError, match="no images"):
        CameraSource(CameraConfig(source=str(tmp_path / "empty"))).start()
    with pytest.raises(CameraError, match="width/height"):
        CameraSource(CameraConfig(source="0", width=-1)).start()
    with pytest.raises(CameraError, match="reconnect"):
        CameraSource(CameraConfig(source="0", reconnect_delay_s=0)).start()


def test_missing_device_keeps_trying_then_gives_up() -> None:
    cfg = CameraConfig(
        source="/dev/video63", reconnect_delay_s=0.05, reconnect_max_delay_s=0.1, reconnect_attempts=4
    )
    cam = CameraSource(cfg).start()
    try:
        time.sleep(0.05)
        assert cam.state.status in (CONNECTING, FAILED)
        deadline = time.monotonic() + 10
        while cam.state.status != FAILED and time.monotonic() < deadline:
            time.sleep(0.05)
        state = cam.state
        assert state.status == FAILED and "gave up after 4 attempts" in state.message
        assert "/dev/video63" in state.message
        assert not state.ever_connected
        assert cam.read(0.1) is None
    finally:
        cam.stop()


def test_folder_that_vanishes_reconnects_when_it_returns(png_folder: Path, tmp_path: Path) -> None:
    cfg = CameraConfig(source=str(png_folder), loop=True, rate_hz=100.0, reconnect_delay_s=0.05)
    with CameraSource(cfg) as cam:
        assert cam.read(2.0) is not None
        moved = tmp_path / "away"
        shutil.move(str(png_folder), moved)
        deadline = time.monotonic() + 5
        while cam.state.status != RECONNECTING and time.monotonic() < deadline:
            cam.read(0.05)
        assert cam.state.status == RECONNECTING
        shutil.move(str(moved), png_folder)
        deadline = time.monotonic() + 10
        frame = None
        while frame is None and time.monotonic() < deadline:
            frame = cam.read(0.2)
        assert frame is not None
        assert cam.state.status == CONNECTED and cam.state.reconnects >= 1


@pytest.mark.slow
def test_network_stream_lost_and_recovered() -> None:
    server = MjpegServer(fps=30).start()
    cfg = CameraConfig(
        source=server.url, reconnect_delay_s=0.1, reconnect_max_delay_s=0.5, read_timeout_s=2.0
    )
    try:
        with CameraSource(cfg) as cam:
            assert cam.kind == URL
            frames = [cam.read(10.0) for _ in range(5)]
            assert all(f is not None for f in frames)
            assert frames[0].image.shape == (48, 64, 3)
            server.stop()
            deadline = time.monotonic() + 10
            while cam.state.status != RECONNECTING and time.monotonic() < deadline:
                cam.read(0.05)
            assert cam.state.status == RECONNECTING
            server.start()  # same port
            frame = None
            deadline = time.monotonic() + 15
            while frame is None and time.monotonic() < deadline:
                frame = cam.read(0.5)
            assert frame is not None and cam.state.status == CONNECTED
            assert cam.state.reconnects == 1
    finally:
        server.stop()


def test_stop_is_prompt_and_idempotent(video: Path) -> None:
    cam = CameraSource(CameraConfig(source=str(video), loop=True)).start()
    assert cam.read(2.0) is not None
    start = time.monotonic()
    cam.stop()
    cam.stop()
    assert time.monotonic() - start < 2.0
    assert not cam.running
    assert cam.read(0.1) is None


@pytest.mark.slow
def test_rate_cap_on_a_live_stream_skips_early_frames() -> None:
    with MjpegServer(fps=30) as server:
        cfg = CameraConfig(source=server.url, rate_hz=10.0)
        with CameraSource(cfg) as cam:
            assert cam.read(10.0) is not None
            start = time.monotonic()
            frames = [f for _ in range(12) if (f := cam.read(2.0)) is not None]
            elapsed = time.monotonic() - start
            state = cam.state
    assert len(frames) == 12
    assert 12 / elapsed == pytest.approx(10.0, rel=0.25)
    assert state.skipped >= 15  # about two of every three frames of the 30 fps stream
    assert state.dropped == 0  # the consumer kept up: skipping is the cap, not loss
