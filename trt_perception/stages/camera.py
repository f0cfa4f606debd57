"""Camera source: V4L2 device, video file, image folder, network stream or GStreamer pipeline.

ROS-free, shared by the ``camera_bridge`` node and the in-process perception pipeline. Capture runs in
its own thread. Live sources (camera, stream, pipeline) keep only the newest frame, so a slow consumer
never stalls the driver (the frames it missed are counted as ``dropped``); finite sources (file,
folder) hand every frame over and play at the file's rate or ``rate_hz``. A source that fails or
disappears is reopened with exponential backoff, and ``state`` says what is going on for diagnostics;
each change of state (opening, open, lost, reconnecting, failed...) is one log line, and OpenCV's and
libav's own lines for each failed attempt are silenced (the state line says what failed).

    with CameraSource(CameraConfig(source="data/sample_scene.mp4", loop=True)) as cam:
        frame = cam.read(timeout_s=1.0)   # Frame(image=BGR uint8, stamp_ns, seq, dropped, index) or None
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

# libav prints its own line for every failed attempt ("[tcp @ 0x..] Connection to tcp://... failed:
# Connection refused"); OpenCV's FFmpeg backend sets libav's level from this variable, once, when it first
# opens something. AV_LOG_QUIET (-8); a user's own setting stays.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # after the variable above, so no FFmpeg capture can start before it
import numpy as np

from .fields import setting

_LOG = logging.getLogger(__name__)

# Source kinds.
DEVICE, FILE, FOLDER, URL, GSTREAMER = "device", "file", "folder", "url", "gstreamer"
KINDS = ("auto", DEVICE, FILE, FOLDER, URL, GSTREAMER)

# Source states (``CameraState.status``).
CONNECTING, CONNECTED, RECONNECTING, FAILED, FINISHED, STOPPED = (
    "connecting",
    "connected",
    "reconnecting",
    "failed",
    "finished",
    "stopped",
)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")


class CameraError(RuntimeError):
    """A source that cannot work as configured (missing file, empty folder, bad setting)."""


#: ``log(level, line)`` with a ``logging`` level: where the state lines go (a node passes its logger).
Log = Callable[[int, str], None]

_STATE_LEVELS = {
    CONNECTED: logging.INFO,
    FINISHED: logging.INFO,
    STOPPED: logging.INFO,
    FAILED: logging.ERROR,
}


def opencv_has_gstreamer() -> bool:
    """Whether this OpenCV was built with its GStreamer video backend."""
    registry = getattr(cv2, "videoio_registry", None)
    if registry is not None and hasattr(registry, "hasBackend"):
        return bool(registry.hasBackend(cv2.CAP_GSTREAMER))
    return bool(re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()))


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV's own warning for a failed open ("[ WARN:0@0.3] global cap.cpp:212 open VIDEOIO(FFMPEG):
    backend is generally available but can't be used to capture by name") off for one call."""
    utils = getattr(getattr(cv2, "utils", None), "logging", None)
    if utils is None:
        yield
        return
    old = utils.getLogLevel()
    utils.setLogLevel(min(old, utils.LOG_LEVEL_ERROR))
    try:
        yield
    finally:
        utils.setLogLevel(old)


def _lossless_text(value: bool | None) -> str:
    return "auto" if value is None else str(value).lower()


def _lossless_value(text: str) -> bool | None:
    values = {"auto": None, "true": True, "false": False}
    if str(text).lower() not in values:
        raise CameraError(f"lossless must be auto, true or false, got '{text}'")
    return values[str(text).lower()]


@dataclass
class CameraConfig:
    """Where frames come from and how they are delivered. The fields are the nodes' camera parameters."""

    source: str = setting(
        "0",
        help="Camera: V4L2 index ('0') or device path ('/dev/video0'); or a video file, an image folder or "
        "glob (sorted), a stream URL (rtsp://, http://), or a GStreamer pipeline ending in appsink.",
    )
    kind: str = setting(
        "auto",
        help="auto | device | file | folder | url | gstreamer ('auto' guesses from source).",
        param="source_kind",
    )
    rate_hz: float = setting(
        0.0,
        help="Most frames per second delivered; 0 = the source's rate (a video file plays at its fps, a "
        "folder as fast as frames are taken, a camera as it delivers).",
    )
    width: int = setting(
        0, help="Output width in pixels; 0 keeps the source's (with height set: keeps the aspect)."
    )
    height: int = setting(
        0, help="Output height in pixels; 0 keeps the source's (with width set: keeps the aspect)."
    )
    loop: bool = setting(False, help="Start a video file or image folder again at its end.")
    reconnect_delay_s: float = setting(
        0.5,
        help="Seconds before the first reconnect attempt; doubled after each failure.",
        param="reconnect_delay",
    )
    reconnect_max_delay_s: float = setting(
        10.0, help="Longest wait between reconnect attempts, in seconds.", param="reconnect_max_delay"
    )
    reconnect_attempts: int = setting(
        0, help="Failed attempts in a row before giving up (state failed); 0 retries forever."
    )
    read_timeout_s: float = setting(
        5.0, help="Seconds a live source may deliver nothing before it counts as lost.", param="read_timeout"
    )
    capture_width: int = setting(0, help="V4L2: frame width requested from the driver; 0 = driver default.")
    capture_height: int = setting(0, help="V4L2: frame height requested from the driver; 0 = driver default.")
    capture_fps: float = setting(0.0, help="V4L2: frame rate requested from the driver; 0 = driver default.")
    fourcc: str = setting(
        "", help="V4L2: pixel format requested from the driver, e.g. MJPG or YUYV; empty = default."
    )
    lossless: bool | None = setting(
        None,
        help="auto | true | false: hand over every frame (true) or keep only the newest (false); auto: "
        "finite sources (file, folder) every frame, live ones the newest.",
        to_param=_lossless_text,
        from_param=_lossless_value,
    )

    def resolved_kind(self) -> str:
        """The source kind, guessed from ``source`` when ``kind`` is "auto"."""
        if self.kind != "auto":
            if self.kind not in KINDS:
                raise CameraError(f"unknown camera source kind '{self.kind}'; use one of {', '.join(KINDS)}")
            return self.kind
        s = self.source.strip()
        if s.lstrip("-").isdigit() or s.startswith("/dev/"):
            return DEVICE
        if "!" in s:
            return GSTREAMER
        if "://" in s:
            return URL
        if os.path.isdir(s) or any(c in s for c in "*?["):
            return FOLDER
        return FILE

    def is_live(self) -> bool:
        return self.resolved_kind() in (DEVICE, URL, GSTREAMER)


@dataclass(frozen=True)
class Frame:
    """One captured frame: BGR uint8 pixels, wall-clock capture time, and counters."""

    image: np.ndarray
    #: Capture time (``time.time_ns()``): when the driver returned the frame (or the decoder, for a
    #: file or folder frame read at its turn in the playback).
    stamp_ns: int
    #: Delivery sequence number, 0, 1, 2... (gaps never appear; missed frames count in ``dropped``).
    seq: int
    #: Frames captured but never delivered because a newer one replaced them (total so far).
    dropped: int
    #: Position in a file or folder (frame number / image number), counting from 0; -1 for live sources.
    index: int = -1
    #: The image file a folder frame came from; "" otherwise.
    path: str = ""


@dataclass(frozen=True)
class CameraState:
    """What the source is doing, for diagnostics."""

    status: str = CONNECTING
    message: str = ""
    #: Whether the source ever delivered a frame (a camera that never opened is worse than one lost).
    ever_connected: bool = False
    reconnects: int = 0
    captured: int = 0
    dropped: int = 0
    #: Frames the rate cap left out on a live source (not an error, unlike ``dropped``).
    skipped: int = 0
    #: Native rate the source reports (0 when unknown).
    source_fps: float = 0.0
    since: float = field(default_factory=time.monotonic)


#: diagnostic_msgs/DiagnosticStatus levels (the same numbers as ``ros.diagnostics``).
OK, WARN, ERROR = 0, 1, 2
#: Camera states after which no frame will come.
ENDED = (FINISHED, STOPPED, FAILED)


def camera_status(state: CameraState) -> tuple[int, str] | None:
    """(level, message) of a camera source, the one mapping ``camera_bridge`` and the pipeline nodes
    report: OK while it delivers (or finished after delivering), WARN while it reconnects, ERROR when it
    never opened (after its first attempt) or gave up; None while there is nothing to say yet (first
    attempt under way) or it was stopped."""
    if state.status == CONNECTED or (state.status == FINISHED and state.ever_connected):
        return OK, state.message
    if state.status == RECONNECTING:
        return WARN, state.message
    if state.status == FAILED or (state.status == CONNECTING and state.message):
        return ERROR, state.message
    return None


class _Reader:
    """Uniform ``open() / read() -> (ok, image, index, path) / release()`` over OpenCV and folders."""

    def __init__(self, cfg: CameraConfig, kind: str) -> None:
        self.cfg, self.kind = cfg, kind
        self.cap: Any = None
        self.files: list[str] = []
        self.pos = 0
        self.fps = 0.0

    def open(self) -> None:
        cfg = self.cfg
        if self.kind == FOLDER:
            self.files = list_images(cfg.source)
            if not self.files:
                raise CameraError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in '{cfg.source}'")
            self.pos = 0
            return
        if self.kind == FILE and not os.path.isfile(cfg.source):
            raise CameraError(f"video file '{cfg.source}' not found")
        with _quiet_opencv():
            cap = _open_capture(cfg, self.kind)
        if cap is None or not cap.isOpened():
            raise CameraError(f"OpenCV could not open {self.kind} source '{cfg.source}'")
        self.cap = cap
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not 0 < self.fps < 1000:
            self.fps = 0.0
        self.pos = 0

    def read(self) -> tuple[bool, np.ndarray | None, int, str]:
        if self.kind == FOLDER:
            if self.pos >= len(self.files):
                return False, None, self.pos, ""
            path = self.files[self.pos]
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is None:
                raise CameraError(f"cannot read image '{path}'")
            self.pos += 1
            return True, image, self.pos - 1, path
        ok, image = self.cap.read()
        if not ok or image is None:
            return False, None, self.pos, ""
        self.pos += 1
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return True, image, self.pos - 1, ""

    def rewind(self) -> bool:
        """Back to the start of a file or folder; False when it is gone."""
        if self.kind == FOLDER:
            self.files = list_images(self.cfg.source)
            self.pos = 0
            return bool(self.files)
        self.release()
        self.open()
        return True

    def release(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


def list_images(source: str) -> list[str]:
    """Sorted image files of a folder, or of a glob pattern."""
    pattern = os.path.join(glob.escape(source), "*") if os.path.isdir(source) else source
    names = glob.glob(pattern)
    return sorted(n for n in names if n.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(n))


def _open_capture(cfg: CameraConfig, kind: str) -> Any:
    timeout_ms = int(max(cfg.read_timeout_s, 0.1) * 1000)
    if kind == DEVICE:
        cap = cv2.VideoCapture(device_index(cfg.source), cv2.CAP_V4L2)
        if not cap.isOpened():
            cap = cv2.VideoCapture(cfg.source.strip(), cv2.CAP_ANY)
        if cap.isOpened():
            _configure_device(cap, cfg)
        return cap
    if kind == GSTREAMER:
        return cv2.VideoCapture(cfg.source, cv2.CAP_GSTREAMER)
    if kind == URL:
        # Timeouts so a dead stream reports itself instead of blocking the capture thread forever.
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
        return cv2.VideoCapture(cfg.source, cv2.CAP_FFMPEG, params)
    return cv2.VideoCapture(cfg.source)


def device_index(source: str) -> int:
    """V4L2 index of "0" or "/dev/video0" (OpenCV's V4L2 backend opens by index, not by path)."""
    s = source.strip()
    m = re.fullmatch(r"(?:/dev/video)?(\d+)", s)
    if m is None:
        real = os.path.realpath(s)  # /dev/v4l/by-id/... links to /dev/videoN
        m = re.fullmatch(r"/dev/video(\d+)", real)
    return int(m.group(1)) if m else -1


def _configure_device(cap: Any, cfg: CameraConfig) -> None:
    if cfg.fourcc:
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*cfg.fourcc[:4].ljust(4)))
    if cfg.capture_width > 0:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.capture_width)
    if cfg.capture_height > 0:
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.capture_height)
    if cfg.capture_fps > 0:
        cap.set(cv2.CAP_PROP_FPS, cfg.capture_fps)
    # Fewest driver buffers: the newest frame, not one queued a few periods ago.
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)


def output_size(src_w: int, src_h: int, width: int, height: int) -> tuple[int, int]:
    """(w, h) after resizing to ``width`` x ``height`` (0 = keep, one 0 = keep the aspect ratio)."""
    if width > 0 and height > 0:
        return width, height
    if width > 0:
        return width, max(1, round(src_h * width / src_w))
    if height > 0:
        return max(1, round(src_w * height / src_h)), height
    return src_w, src_h


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    h, w = image.shape[:2]
    size = output_size(w, h, width, height)
    if size == (w, h):
        return image
    shrink = size[0] * size[1] < w * h
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class CameraSource:
    """Threaded capture from a ``CameraConfig``: ``start()``, ``read(timeout_s)``, ``stop()``, ``state``."""

    def __init__(
        self,
        cfg: CameraConfig,
        on_frame: Callable[[Frame], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        log: Log | None = None,
    ) -> None:
        """``on_frame``: called in the capture thread with each frame instead of handing it to ``read``;
        for a consumer that never blocks (a best-effort / keep-last publisher), it saves a thread
        switch per frame. It must not raise.

        ``clock`` (monotonic seconds) and ``sleep(seconds)`` time the pacing: a file's or folder's
        playback rate and the rate cap. Injected together, they let a test check the schedule exactly,
        whatever the machine's load; by default pacing waits on the stop event, so ``stop()`` cuts a
        wait short.

        ``log(level, line)`` gets one line per change of state (default: this module's ``logging``
        logger); repeated failures in the same state are not repeated there (``state`` has the count)."""
        self.cfg = cfg
        self._on_frame = on_frame
        self._clock = clock
        self._sleep = sleep
        self.kind = cfg.resolved_kind()
        self.lossless = (not cfg.is_live()) if cfg.lossless is None else cfg.lossless
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._taken = True
        self._seq = 0
        self._returned = -1
        self._state = CameraState()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reader = _Reader(cfg, self.kind)
        self._log: Log = log or _LOG.log
        self._logged_status = ""

    # -- lifecycle
    def start(self) -> CameraSource:
        """Check the configuration, open the source once and start capturing.

        Raises ``CameraError`` for a configuration that can never work (missing file, empty folder,
        bad size or kind). A live source that does not open yet is not an error: the capture thread
        keeps trying with backoff and ``state`` says so.
        """
        if self._thread is not None:
            return self
        self.check()
        if self.kind in (FILE, FOLDER):
            self._reader.open()  # a missing file or an empty folder is a configuration error
            self._set_state(CONNECTED, f"opened {self.kind} '{self.cfg.source}'", source_fps=self._reader.fps)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="camera-capture", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self._reader.release()
        self._set_state(STOPPED, "stopped")

    def __enter__(self) -> CameraSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- consumer side
    def read(self, timeout_s: float | None = 1.0) -> Frame | None:
        """The newest frame not yet returned, waiting up to ``timeout_s``; None on timeout or at the end."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            if self._stop.is_set():
                return None  # a frame captured just before stop() is not handed out after it
            while self._latest is None or self._latest.seq <= self._returned:
                if self._stop.is_set() or self._state.status in (FINISHED, FAILED, STOPPED):
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame = self._latest
            self._returned = frame.seq
            self._taken = True
            self._cond.notify_all()
            return frame

    @property
    def state(self) -> CameraState:
        with self._cond:
            return self._state

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def check(self) -> None:
        """Raise ``CameraError`` for a configuration that can never work, without starting anything."""
        cfg = self.cfg
        if self.kind == FILE and not os.path.isfile(cfg.source):
            raise CameraError(f"video file '{cfg.source}' not found")
        if self.kind == FOLDER and not list_images(cfg.source):
            raise CameraError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in '{cfg.source}'")
        if cfg.width < 0 or cfg.height < 0:
            raise CameraError(f"resize width/height must be >= 0, got {cfg.width}x{cfg.height}")
        if cfg.rate_hz < 0:
            raise CameraError(f"rate_hz must be >= 0, got {cfg.rate_hz}")
        if cfg.reconnect_delay_s <= 0 or cfg.reconnect_max_delay_s < cfg.reconnect_delay_s:
            raise CameraError(
                f"reconnect delays must satisfy 0 < reconnect_delay_s <= reconnect_max_delay_s, got "
                f"{cfg.reconnect_delay_s} and {cfg.reconnect_max_delay_s}"
            )
        if not cfg.source.strip():
            raise CameraError("camera source is empty")
        if self.kind == GSTREAMER and not opencv_has_gstreamer():
            raise CameraError(
                f"OpenCV {cv2.__version__} was built without GStreamer (cv2.getBuildInformation(): "
                f"GStreamer NO), so the pipeline '{cfg.source}' cannot be opened: use an OpenCV built with "
                "GStreamer (e.g. the system's python3-opencv or JetPack's), or a device, file or URL source"
            )

    def _set_state(self, status: str, message: str, **changes: Any) -> None:
        with self._cond:
            old = self._state
            since = old.since if old.status == status else time.monotonic()
            self._state = replace(old, status=status, message=message, since=since, **changes)
            self._cond.notify_all()
            changed, self._logged_status = status != self._logged_status, status
        if changed:
            self._log(
                _STATE_LEVELS.get(status, logging.WARNING),
                f"camera {self.kind} '{self.cfg.source}': {status}: {message}",
            )

    def _run(self) -> None:
        period = 1.0 / self.cfg.rate_hz if self.cfg.rate_hz > 0 else 0.0
        next_due = self._clock()
        failures = 0
        live = self.cfg.is_live()
        while not self._stop.is_set():
            if self._reader.cap is None and self.kind != FOLDER:
                if not self._connect(failures):
                    failures += 1
                    continue
                next_due = self._clock()
            # A file or folder plays like a camera: wait for the frame's turn, then read it, so the
            # decoding happens just before the hand-over (as a driver's does), not right after it.
            file_period = 0.0 if live else period or (1.0 / self._reader.fps if self._reader.fps else 0.0)
            if file_period:
                if self._wait_until(next_due):
                    return
                next_due = max(next_due + file_period, self._clock() - file_period)
            try:
                ok, image, index, path = self._reader.read()
            except CameraError as exc:
                self._lost(str(exc))
                failures += 1
                continue
            if not ok or image is None:
                next_due -= file_period  # the slot was not used: the first frame after a rewind takes it
                if live:
                    self._lost(f"{self.kind} '{self.cfg.source}' stopped delivering frames")
                    failures += 1
                elif not self._at_end():
                    return
                continue
            now = self._clock()
            stamp_ns = time.time_ns()  # when the driver (or the decoder) returned the frame
            if failures or self._state.status != CONNECTED:
                self._set_state(CONNECTED, f"capturing from {self.kind} '{self.cfg.source}'")
            failures = 0
            if live and period:  # rate cap on a live source: skip the frames that come early
                if now < next_due - 0.002:
                    with self._cond:
                        self._state = replace(self._state, skipped=self._state.skipped + 1)
                    continue
                next_due = max(next_due + period, now - period)
            self._deliver(resize(image, self.cfg.width, self.cfg.height), stamp_ns, index, path)

    def _connect(self, failures: int) -> bool:
        """One open attempt of a live source (after the backoff for ``failures`` failed ones)."""
        cfg = self.cfg
        if failures:
            if cfg.reconnect_attempts and failures >= cfg.reconnect_attempts:
                self._set_state(FAILED, f"gave up after {failures} attempts: {self._state.message}")
                self._stop.set()
                return False
            delay = min(cfg.reconnect_delay_s * 2 ** (failures - 1), cfg.reconnect_max_delay_s)
            if self._stop.wait(delay):
                return False
        try:
            self._reader.open()
        except CameraError as exc:
            status = RECONNECTING if self._state.ever_connected else CONNECTING
            self._set_state(status, f"{exc} (attempt {failures + 1})")
            return False
        self._set_state(
            CONNECTED,
            f"opened {self.kind} '{cfg.source}'",
            source_fps=self._reader.fps,
            reconnects=self._state.reconnects + (1 if self._state.ever_connected else 0),
        )
        return True

    def _lost(self, message: str) -> None:
        self._reader.release()
        if self.kind == FOLDER:
            # A folder is "reconnected" by listing it again after the backoff.
            self._reader.files, self._reader.pos = [], 0
        self._set_state(RECONNECTING, message)
        if self.kind == FOLDER:
            self._retry_folder()

    def _retry_folder(self) -> None:
        failures = 1
        cfg = self.cfg
        while not self._stop.is_set():
            if cfg.reconnect_attempts and failures > cfg.reconnect_attempts:
                self._set_state(FAILED, f"gave up after {failures - 1} attempts: {self._state.message}")
                self._stop.set()
                return
            delay = min(cfg.reconnect_delay_s * 2 ** (failures - 1), cfg.reconnect_max_delay_s)
            if self._stop.wait(delay):
                return
            files = list_images(cfg.source)
            if files:
                self._reader.files, self._reader.pos = files, 0
                self._set_state(
                    CONNECTED, f"folder '{cfg.source}' is back", reconnects=self._state.reconnects + 1
                )
                return
            self._set_state(RECONNECTING, f"no images in '{cfg.source}' (attempt {failures})")
            failures += 1

    def _at_end(self) -> bool:
        """End of a file or folder: rewind when looping; False when the capture thread should end."""
        if self.cfg.loop:
            try:
                if self._reader.rewind():
                    return True
            except CameraError as exc:
                self._lost(str(exc))
                return not self._stop.is_set()
            self._lost(f"'{self.cfg.source}' is gone")
            return not self._stop.is_set()
        self._reader.release()
        self._set_state(FINISHED, f"end of '{self.cfg.source}' after {self._state.captured} frames")
        return False

    def _wait_until(self, t: float) -> bool:
        """Sleep until ``t`` on the pacing clock; True when stopped meanwhile."""
        delay = t - self._clock()
        if delay <= 0:
            return self._stop.is_set()
        if self._sleep is None:
            return self._stop.wait(delay)
        self._sleep(delay)
        return self._stop.is_set()

    def _deliver(self, image: np.ndarray, stamp_ns: int, index: int, path: str) -> None:
        if self._on_frame is not None:
            with self._cond:
                frame = Frame(image, stamp_ns, self._seq, self._state.dropped, index, path)
                self._seq += 1
            self._on_frame(frame)
            # Book-keeping after the consumer, off the capture -> result path.
            with self._cond:
                self._state = replace(self._state, captured=self._state.captured + 1, ever_connected=True)
            return
        with self._cond:
            if self.lossless:
                while not self._taken and not self._stop.is_set():
                    self._cond.wait(0.1)
            dropped = self._state.dropped + (0 if self._taken else 1)
            self._latest = Frame(image, stamp_ns, self._seq, dropped, index, path)
            self._seq += 1
            self._taken = False
            self._state = replace(
                self._state, captured=self._state.captured + 1, dropped=dropped, ever_connected=True
            )
            self._cond.notify_all()


def open_source(path_or_cfg: str | Path | CameraConfig, **overrides: Any) -> CameraSource:
    """Shorthand: ``open_source("data/sample_scene.mp4", loop=True)`` -> a started CameraSource."""
    cfg = path_or_cfg if isinstance(path_or_cfg, CameraConfig) else CameraConfig(source=str(path_or_cfg))
    return CameraSource(replace(cfg, **overrides)).start()
