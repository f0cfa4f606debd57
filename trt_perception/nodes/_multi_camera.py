"""``perception_pipeline`` with several cameras: N sources, one batched detector call per batch.

Two forms: ``camera.sources`` (devices, videos, streams: each a ``CameraSource`` as ``camera.source``,
every other ``camera.*`` parameter applying to all) or ``image_topics`` (frames of existing camera
drivers, through ``subscribe_images``). Either way the frames go into a ``Muxer`` and each released
batch through ``MultiCameraPipeline`` (one detector call, every camera's plate crops in one reader call,
a tracker and plate consensus per camera) in a worker thread. Camera ``i`` is named ``camera_names[i]``
(default ``cam<i>``): its outputs go to ``<name>/detections``, ``<name>/tracks``... with its own
header: ``camera_frame_ids[i]`` (default its name) for a source, the image's own header for a topic.

A camera that stops or fails never stalls the others: a batch waits ``batch.timeout`` at most for a
missing camera, an ended source is not waited for, and one silent for ``batch.drop_silent_after`` is
not waited for until its next frame. ``/diagnostics`` gets a status per camera (``<fqn>: camera
<name>``: state, rate, frame age, latency, drops) and one per batch (``<fqn>: batch``: size, fill,
engine time, timeouts); their levels count in the node's summary.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from sensor_msgs.msg import Image

from ..inference.tensors import EngineError
from ..metrics.latency import END_TO_END, FRAME_AGE, LatencyRecorder
from ..pipeline.multi_camera import BatchResult, MultiCameraPipeline, MultiCameraRunner
from ..pipeline.muxer import MuxSource
from ..ros.diagnostics import threshold_level
from ..ros.files import resolve_file
from ..ros.node_base import ManagedPerceptionNode
from ..ros.params import Param
from ..stages.camera import OK, WARN, CameraError, CameraState, camera_status
from ..stages.detector import DetectorConfig
from ..stages.plate_consensus import PlateConsensusConfig
from ..stages.plate_reader import PlateReaderConfig
from ..stages.tracker import TrackerConfig
from ._pipeline_outputs import PipelineOutputs
from ._stages import CAMERA, DETECTOR, PLATE_READER, close_stage, rebuilt

MULTI_CAMERA_PARAMETERS: tuple[Param, ...] = (
    Param(
        "camera.sources",
        [],
        "Several cameras in one engine call: each a source as camera.source (the other camera.* "
        "parameters apply to every one); their outputs go under camera_names. Empty: the single "
        "camera.source, its outputs as they are.",
    ),
    Param(
        "image_topics",
        [],
        "Several cameras from existing drivers: their sensor_msgs/Image topics (instead of "
        "camera.sources), batched the same way; the outputs carry each image's own header.",
    ),
    Param(
        "camera_names",
        [],
        "Name of each camera (camera.sources or image_topics), the namespace of its outputs "
        "(<name>/detections, <name>/tracks...); empty: cam0, cam1...",
    ),
    Param(
        "camera_frame_ids",
        [],
        "header.frame_id of each camera.sources camera's outputs; empty: the camera's name.",
    ),
    Param(
        "batch.timeout",
        0.05,
        "Seconds a batch waits for the cameras still missing once its first frame is in "
        "(nvstreammux's batched-push-timeout): a stalled camera delays the others this much at most.",
        range=(0.0, 10.0),
    ),
    Param(
        "batch.drop_silent_after",
        1.0,
        "Seconds without a frame after which a camera is no longer waited for at all; its next frame "
        "brings it back.",
        range=(0.0, 3600.0),
    ),
)

#: The per-camera latency recorded here: capture (or image stamp) to results published.
LATENCY = "latency"
#: Watch period (s): silent cameras, muxer drops.
_WATCH_S = 0.5


def multi_camera_requested(params: Mapping[str, Any]) -> bool:
    return bool(_entries(params["camera.sources"]) or _entries(params["image_topics"]))


def camera_count(params: Mapping[str, Any]) -> int:
    """Frames per detector call: one per camera (1 for the single ``camera.source``)."""
    return max(1, len(_entries(params["camera.sources"])), len(_entries(params["image_topics"])))


def _entries(values: list[str]) -> list[str]:
    return [v for v in values if v]  # a launch argument's empty entry is no camera


@dataclass
class _Camera:
    """One camera as the node sees it: where its frames come from, its outputs and its figures."""

    name: str
    frame_id: str
    source: str
    outputs: PipelineOutputs
    recorder: LatencyRecorder
    #: Muxer counts seen at the last watch, and when this camera last pushed a frame (monotonic).
    pushed: int = 0
    drops: int = 0
    last_frame: float = field(default_factory=time.monotonic)
    silent: bool = False
    state: CameraState | None = None


class MultiCamera:
    """The N-camera half of ``PerceptionPipelineNode``: ``build`` (configure), ``start`` (activate),
    ``stop`` (deactivate), ``release`` (cleanup), ``apply_parameters`` (live detector and reader)."""

    def __init__(
        self, node: ManagedPerceptionNode, pipeline: MultiCameraPipeline, cameras: list[_Camera], topics: bool
    ) -> None:
        self.node = node
        self.pipeline = pipeline
        self.cameras = cameras
        self.topics = topics
        self.runner: MultiCameraRunner | None = None
        p = node.params
        self._frame_age_ms = (float(p["frame_age_warn_ms"]), float(p["frame_age_error_ms"]))
        self._dropped = (float(p["dropped_frames_warn"]), float(p["dropped_frames_error"]))
        self._batch = LatencyRecorder(window=int(p["latency_window"]))
        self._batches: deque[tuple[int, bool]] = deque(maxlen=int(p["latency_window"]))  # size, timed out
        self._timeouts = 0
        node.diagnostics.add_status_source(self.statuses)

    @classmethod
    def build(
        cls,
        node: ManagedPerceptionNode,
        detector: DetectorConfig,
        reader: PlateReaderConfig | None,
        tracker: TrackerConfig | None,
        consensus: PlateConsensusConfig,
    ) -> MultiCamera:
        """The cameras from the parameters (a ValueError naming the parameter for a wrong list), the
        batched pipeline (an error naming the model when its batch is fixed), warmed up for 1..N."""
        p = node.params
        sources, topics = _entries(p["camera.sources"]), _entries(p["image_topics"])
        if sources and topics:
            raise ValueError("camera.sources and image_topics both given: one form of cameras at a time")
        if p["segmentation.enabled"]:
            raise ValueError("segmentation.enabled: the segmenter runs with a single camera.source only")
        inputs = sources or topics
        names = _entries(p["camera_names"]) or [f"cam{i}" for i in range(len(inputs))]
        frame_ids = _entries(p["camera_frame_ids"]) or names
        for key, values in (("camera_names", names), ("camera_frame_ids", frame_ids)):
            if len(values) != len(inputs):
                form = "image_topics" if topics else "camera.sources"
                raise ValueError(f"{key}: {len(values)} entries for {len(inputs)} {form}")
        if len(set(names)) != len(names):
            raise ValueError(f"camera_names must differ, got {names}")
        try:
            pipeline = MultiCameraPipeline.build(
                len(inputs), detector, reader, tracker, consensus, node.latency
            )
        except EngineError as exc:
            raise EngineError(f"detector.model for {len(inputs)} cameras: {exc}") from exc
        pipeline.warmup()
        node.stages_ready(pipeline.detector, pipeline.reader)
        cameras = [
            _Camera(name, "" if topics else frame_id, source, PipelineOutputs(node, p, name, image=not topics),
                    LatencyRecorder(window=int(p["latency_window"])))
            for name, frame_id, source in zip(names, frame_ids, inputs)
        ]  # fmt: skip
        return cls(node, pipeline, cameras, bool(topics))

    # -- lifecycle
    def start(self) -> None:
        """Open every camera source (``camera <name>: ...`` for one that can never work) or subscribe to
        every image topic; the batches run in a worker thread."""
        p = self.node.params
        configs = (
            []
            if self.topics
            else [CAMERA.config(p, "camera.", source=resolve_file(c.source)) for c in self.cameras]
        )
        sources = [MuxSource(c.name, c.frame_id) for c in self.cameras]
        self.runner = MultiCameraRunner(
            self.pipeline, configs, self._on_batch, sources, float(p["batch.timeout"]),
            self._on_error, self._on_end,
            enabled=lambda: self.node.processing,  # `enabled` false: cameras read, the stages pause
            log=self.node.camera_log,
        )  # fmt: skip
        now = time.monotonic()
        for i, cam in enumerate(self.cameras):
            cam.pushed, cam.drops, cam.last_frame, cam.silent, cam.state = 0, 0, now, False, None
            if self.topics:
                self.node.subscribe_images(cam.source, functools.partial(self._on_image, i))
        try:
            self.runner.start(worker=True)
        except CameraError as exc:
            raise CameraError(f"camera {self.cameras[len(self.runner.cameras)].name}: {exc}") from exc
        self.node.track(self.node.create_timer(_WATCH_S, self._watch))

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()
            self.runner = None

    def release(self) -> None:
        self.node.diagnostics.remove_status_source(self.statuses)
        close_stage(self.pipeline.detector)
        close_stage(self.pipeline.reader)

    def apply_parameters(self, names: set[str]) -> None:
        """Live detector and reader parameters: the stage rebuilt around its engine, shared by all."""
        p, pipe = self.node.params, self.pipeline
        if names & DETECTOR.names("detector.", live=True):
            pipe.detector = rebuilt(
                pipe.detector, DETECTOR.config(p, "detector.", model=pipe.detector.cfg.model)
            )
        if pipe.reader is not None and names & PLATE_READER.names("plate_reader.", live=True):
            cfg = PLATE_READER.config(p, "plate_reader.", model=pipe.reader.cfg.model)
            pipe.reader = rebuilt(pipe.reader, cfg)
            for cam in pipe.cameras:
                if cam.consensus is not None:
                    cam.consensus.reader = pipe.reader

    # -- frames and results
    def _on_image(self, index: int, msg: Image) -> None:
        """An image topic's frame into the muxer with its own header (the executor thread: no model here)."""
        frame = self.node.input_frame(msg, self.runner is not None)
        if frame is not None and self.runner is not None:
            self.runner.muxer.push(index, frame[0], frame[1], frame_id=msg.header.frame_id)

    def _on_batch(self, batch: BatchResult) -> None:
        stats = batch.stats
        self._batch.record(END_TO_END, stats.total_ms)
        self._batch.record("inference", stats.inference_ms)
        self._batch.record("wait", stats.wait_ms)
        self._batches.append((stats.size, stats.timed_out))
        self._timeouts += stats.timed_out
        now_ns = self._now_ns()
        for r in batch.cameras:
            cam = self.cameras[r.source]
            cam.outputs.publish(r.image, r.result, r.frame_id)
            # Capture (or image stamp) to the start of its batch, and to its results out; an image
            # topic's frame age is in the node's recorder already, from its arrival (subscribe_images).
            for rec in (cam.recorder,) if self.topics else (cam.recorder, self.node.latency):
                rec.record_frame_age(r.result.stamp_ns, now_ns - int(stats.total_ms * 1e6))
            cam.recorder.record(LATENCY, (self._now_ns() - r.result.stamp_ns) * 1e-6)

    def _on_error(self, exc: Exception) -> None:
        self.node.warn_input("pipeline", f"{type(exc).__name__}: {exc}")

    def _on_end(self, source: int, state: CameraState, events: list[Any]) -> None:
        cam = self.cameras[source]
        cam.outputs.publish_events(events, cam.frame_id)  # the source logged its end (camera_log)

    def _now_ns(self) -> int:
        # Image stamps are ROS time (the node's clock); a camera source stamps with the system clock.
        return self.node.get_clock().now().nanoseconds if self.topics else time.time_ns()

    def _watch(self) -> None:
        """Cameras silent for batch.drop_silent_after are not waited for; drops per camera counted."""
        runner = self.runner
        if runner is None:
            return
        now, silent_s = time.monotonic(), float(self.node.params["batch.drop_silent_after"])
        pushed, states = runner.muxer.pushed, runner.states
        # Overwritten in the muxer, or read while paused (`enabled` false).
        drops = [m + p for m, p in zip(runner.muxer.drops, runner.paused_drops)]
        # Paused (`enabled` false), an image topic's frames are dropped before the muxer: not silent.
        paused = self.topics and not self.node.processing
        for i, cam in enumerate(self.cameras):
            if pushed[i] != cam.pushed or paused:
                cam.pushed, cam.last_frame, cam.silent = pushed[i], now, False
            elif not cam.silent and now - cam.last_frame > silent_s:
                cam.silent = True
                runner.muxer.end(i)  # a push brings it back
            for rec in (cam.recorder, self.node.latency):
                rec.record_dropped(drops[i] - cam.drops)
            cam.drops = drops[i]
            cam.state = states[i] if states else None

    # -- diagnostics
    def statuses(self) -> list[DiagnosticStatus]:
        return [*(self._camera_status(c) for c in self.cameras), self._batch_status()]

    def _camera_status(self, cam: _Camera) -> DiagnosticStatus:
        age, latency = cam.recorder.stats(FRAME_AGE), cam.recorder.stats(LATENCY)
        drops = cam.recorder.drops()
        state_level, state = self._state(cam)
        age_level = threshold_level(age.mean_ms if age else None, *self._frame_age_ms)
        paused = bool(self.node.diagnostics.paused)  # dropped by choice, not fallen behind
        enough = drops.window_sent >= 10  # as the node's input status
        drop_level = threshold_level(drops.ratio if enough and not paused else None, *self._dropped)
        level = max(state_level, age_level, drop_level)
        rate = age.rate_hz if age else 0.0
        message = f"{cam.name}: {state}, {rate:.1f} Hz"
        if age is not None:
            message += f", frame age {age.mean_ms:.0f} ms"
        message += f", {drops.ratio:.0%} dropped" + (" (paused)" if paused else "")
        values = {
            "source": cam.source,
            "state": state,
            "frame_id": cam.frame_id or "(the images' own)",
            "rate_hz": rate,
            "processed.total": drops.total_processed,
            "dropped.window": drops.window_dropped,
            "dropped.ratio": drops.ratio,
            "dropped.total": drops.total_dropped,
        }
        for stage, s in ((FRAME_AGE, age), (LATENCY, latency)):
            if s is not None:
                values.update({f"{stage}.mean_ms": s.mean_ms, f"{stage}.p95_ms": s.p95_ms})
        return self._status(f"camera {cam.name}", level, message, values)

    def _state(self, cam: _Camera) -> tuple[int, str]:
        """The camera's level and state line: a source's state, or an image topic's flow."""
        if cam.state is not None:
            status = camera_status(cam.state)
            line = cam.state.status + (f" ({cam.state.message})" if cam.state.message else "")
            return (status[0] if status is not None else OK), line
        if cam.silent:
            return WARN, f"no frame for {time.monotonic() - cam.last_frame:.1f} s, not waited for"
        return OK, "receiving" if cam.pushed else "waiting for frames"

    def _batch_status(self) -> DiagnosticStatus:
        total, inference, wait = (self._batch.stats(s) for s in (END_TO_END, "inference", "wait"))
        batches = list(self._batches)  # one copy: the worker thread appends meanwhile
        if total is None or inference is None or wait is None or not batches:
            return self._status("batch", OK, "waiting for frames", {"cameras": len(self.cameras)})
        size = sum(s for s, _ in batches) / len(batches)
        fill = size / len(self.cameras)
        timed_out = sum(t for _, t in batches)
        message = (
            f"{size:.1f} of {len(self.cameras)} cameras a batch ({fill:.0%} full), {total.rate_hz:.1f} "
            f"batches/s, detector engine {inference.mean_ms:.1f} ms a batch, {timed_out} timed out"
        )
        values = {
            "cameras": len(self.cameras),
            "size.mean": size,
            "fill.mean": fill,
            "batches.total": total.total_count,
            "rate_hz": total.rate_hz,
            "timeouts.window": timed_out,
            "timeouts.total": self._timeouts,
            "inference.mean_ms": inference.mean_ms,
            "inference.p95_ms": inference.p95_ms,
            "wait.mean_ms": wait.mean_ms,
            "end_to_end.mean_ms": total.mean_ms,
            "end_to_end.p95_ms": total.p95_ms,
        }
        return self._status("batch", OK, message, values)

    def _status(self, task: str, level: int, message: str, values: dict[str, object]) -> DiagnosticStatus:
        diag = self.node.diagnostics
        return DiagnosticStatus(
            level=bytes([level]),
            name=f"{diag.fqn}: {task}",
            message=message,
            hardware_id=diag.hardware_id,
            values=[
                KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v))
                for k, v in values.items()
            ],
        )
