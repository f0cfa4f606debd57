"""The camera -> stages loop, once: frames from a ``CameraSource`` through a ``PerceptionPipeline``.

``PipelineRunner`` feeds every frame to the pipeline and hands each ``(frame, result)`` to
``on_result``; it serves the ``perception_pipeline`` node (in the capture thread, or a worker thread
taking the newest frame) and ``trt-perception demo`` (a loop in the caller's thread). While ``enabled()``
is false (a node's ``enabled`` parameter) the stages pause: the camera stays open and is read, and each
frame is dropped, counted in the pipeline's recorder (``record_dropped``). When the source
ends, the pipeline is flushed once (the vehicles still in view end with the run) and ``on_end`` gets
the final state and those events. ROS-free.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..stages.camera import ENDED, CameraConfig, CameraSource, CameraState, Frame, Log
from .perception import PerceptionPipeline, PipelineResult


class PipelineRunner:
    """Runs ``pipeline`` on the frames of a camera built from ``camera``.

    ``on_result(frame, result)`` is called after each frame; ``on_error(exc)`` when the pipeline
    raises on a frame (the run goes on: one bad frame must not end the capture); ``on_end(state,
    events)`` once when the source has ended, with the events of the pipeline's flush; ``enabled()``
    before each frame (false: dropped, the stages not run); ``log`` is the camera's (``CameraSource``).
    """

    def __init__(
        self,
        pipeline: PerceptionPipeline,
        camera: CameraConfig,
        on_result: Callable[[Frame, PipelineResult], None],
        on_error: Callable[[Exception], None] | None = None,
        on_end: Callable[[CameraState, list[Any]], None] | None = None,
        enabled: Callable[[], bool] = lambda: True,
        log: Log | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.camera_cfg = camera
        self.camera: CameraSource | None = None
        self.frames = 0
        self._on_result, self._on_error, self._on_end = on_result, on_error, on_end
        self._enabled, self._log = enabled, log
        self._stop = threading.Event()
        self._ended = False
        self._end_lock = threading.Lock()  # the worker and a status timer may both see the end
        self._worker: threading.Thread | None = None

    def start(self, inline: bool = False, worker: bool = False) -> PipelineRunner:
        """Open the source (``CameraError`` when it can never work). ``inline``: the stages run in the
        capture thread, straight after each read; ``worker``: a thread runs ``run()``; neither: the
        caller runs ``run()``."""
        self.camera = CameraSource(
            self.camera_cfg, on_frame=self.process if inline else None, log=self._log
        ).start()
        if worker and not inline:
            self._worker = threading.Thread(target=self.run, name="perception-pipeline", daemon=True)
            self._worker.start()
        return self

    @property
    def running(self) -> bool:
        """True while frames still come: the worker lives, or the camera has not ended."""
        if self._worker is not None:
            return self._worker.is_alive()
        return self.camera is not None and self.camera.state.status not in ENDED

    def run(self, keep_going: Callable[[], bool] = lambda: True, timeout_s: float = 0.5) -> None:
        """Read and process the newest frames in this thread until the source ends, ``stop()`` or
        ``keep_going()`` turns false."""
        assert self.camera is not None
        while not self._stop.is_set() and keep_going():
            frame = self.camera.read(timeout_s=timeout_s)
            if frame is not None:
                self.process(frame)
            elif not self.poll():
                return

    def process(self, frame: Frame) -> None:
        if self._stop.is_set():
            return
        if not self._enabled():  # paused: read, not processed (the input status counts it)
            self.pipeline.latency.record_dropped()
            return
        # Capture -> the thread that runs the stages (the camera hand-over; ~0 when inline).
        self.pipeline.latency.record_frame_age(frame.stamp_ns, time.time_ns())
        try:
            result = self.pipeline(frame.image, frame.stamp_ns)
            self._on_result(frame, result)
        except Exception as exc:  # a bad frame must not end the capture or the worker thread
            if self._on_error is None:
                raise
            self._on_error(exc)
        self.frames += 1

    def poll(self) -> bool:
        """False once the source has ended (then, once: flush the pipeline and call ``on_end``)."""
        if self.camera is None:
            return False
        state = self.camera.state
        if state.status not in ENDED:
            return True
        self.finish(state)
        return False

    def finish(self, state: CameraState | None = None) -> None:
        """Flush the pipeline into ``on_end`` (once per run)."""
        with self._end_lock:
            if self._ended:
                return
            self._ended = True
        events = self.pipeline.flush()
        if self._on_end is not None:
            self._on_end(state or (self.camera.state if self.camera else CameraState()), events)

    def stop(self) -> None:
        self._stop.set()
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(5.0)
        if self.camera is not None:
            self.camera.stop()  # joins the capture thread, which may be finishing a frame
