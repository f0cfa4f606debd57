"""``perception_pipeline`` node: camera -> detector -> tracker -> plate reader (-> segmenter) in ONE process.

Frames go from the ROS-free ``CameraSource`` straight into the stages as numpy arrays (DeepStream's
single pipeline); only the results are published: ``detections`` and ``plates``
(Detection2DArray), ``segmentation/mask`` when the segmenter is on, and the camera image itself only
when ``publish_image`` is set (or someone subscribes to the annotated view).

With ``tracking.enabled`` (the default) the vehicles are tracked and their plates read per vehicle
(``stages/plate_consensus.py``): ``tracks`` (Detection2DArray, track ID in ``Detection2D.id``, the
vehicle's plate text as ``results[1]`` once its consensus is confident), ``plates`` carries each
vehicle's consensus text (``id`` = track ID) instead of every frame's guess, and ``plate_events``
(std_msgs/String, one JSON object per event: ``final`` when a vehicle's text first becomes
confident, ``ended`` when its track ends) carries text, confidence, agreeing readings, frames seen,
reads, first/last stamp and the best plate crop (base64 JPEG). JSON in a String because no message
package here has those fields (custom messages would need a rosidl build), and one self-contained
message per event keeps the crop with its text: a separate Image topic could only be matched by
stamp, and two vehicles' events can share one.

By default the stages run in the camera's capture thread, straight after the frame is read: no
hand-over, no thread switch, the frame still in that core's cache; the detections go out serialised
straight to CDR (``DetectionMsgBuilder``). With ``camera.process_in_capture_thread`` off, a worker thread takes the
newest frame instead, so a pipeline slower than the camera never holds up a live camera's driver.

With ``camera.sources`` or ``image_topics`` it runs several cameras through one batched detector call,
each camera's outputs under its name (``nodes/_multi_camera.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from ..pipeline.perception import (
    ConsensusStep,
    DetectStep,
    PerceptionPipeline,
    PipelineResult,
    ReadStep,
    SegmentStep,
)
from ..pipeline.runner import PipelineRunner
from ..ros.diagnostics import WARN
from ..ros.files import params_model_file, resolve_file
from ..ros.node_base import LIFECYCLE_PARAMETERS, ManagedPerceptionNode, run_node
from ..ros.params import Param
from ..stages.camera import ENDED, OK, CameraState, Frame, camera_status
from ._multi_camera import MULTI_CAMERA_PARAMETERS, MultiCamera, camera_count, multi_camera_requested
from ._pipeline_outputs import PipelineOutputs
from ._stages import CAMERA, DETECTOR, PLATE_CONSENSUS, PLATE_READER, SEGMENTER, TRACKER, close_stage, rebuilt

PARAMETERS: tuple[Param, ...] = (
    *CAMERA.params("camera."),
    Param(
        "camera.process_in_capture_thread",
        True,
        "Run the stages in the capture thread (no hand-over); false: a worker takes the newest frame, "
        "so a pipeline slower than a live camera never holds up its driver.",
    ),
    *MULTI_CAMERA_PARAMETERS,
    Param("frame_id", "camera", "frame_id of the published headers."),
    Param("publish_image", False, "Also publish the camera frames (costs a copy and the transport)."),
    Param("image_topic", "camera/image_raw", "Where the camera frames go when publish_image is set."),
    Param("detections_topic", "detections", "Detector output (vision_msgs/Detection2DArray)."),
    Param(
        "plates_topic",
        "plates",
        "Plate texts (Detection2DArray, class_id = text; with tracking each vehicle's consensus, id = track ID).",
    ),
    Param(
        "tracks_topic",
        "tracks",
        "Tracked objects (Detection2DArray, id = track ID, results[1] = plate text).",
    ),
    Param(
        "plate_events_topic",
        "plate_events",
        "Per-vehicle plate events (std_msgs/String JSON: final / ended, with the best crop; transient local).",
    ),
    Param(
        "tracking.enabled", True, "Track the detections and read plates per vehicle (gated, by consensus)."
    ),
    Param("annotated_topic", "perception/image", "Annotated frames, drawn only while subscribed."),
    Param(
        "use_engine_builder",
        False,
        "Load the engine_builder's TensorRT engines for the detector, the reader and the segmenter.",
    ),
    Param("precision", "fp16", "Engine precision asked from the engine builder (fp32 | fp16 | int8)."),
    Param(
        "engine_wait_timeout",
        600.0,
        "Seconds to wait for the engine builder before falling back to the ONNX models.",
    ),
    Param("plate_reader.enabled", True, "Run the plate reader on the detector's plate boxes."),
    Param("segmentation.enabled", False, "Run the segmenter too (needs stages/segmenter.py)."),
    *SEGMENTER.params("segmentation."),
    Param("segmentation.mask_topic", "segmentation/mask", "mono8 class-index mask topic."),
    *DETECTOR.params("detector."),
    *PLATE_READER.params("plate_reader."),
    *TRACKER.params("tracker."),
    *PLATE_CONSENSUS.params("plate_consensus."),
    *LIFECYCLE_PARAMETERS,
)


class PerceptionPipelineNode(ManagedPerceptionNode):
    """Lifecycle: configure builds the stages (engines loaded, warmed up) and checks the camera config;
    activate opens the camera and runs; deactivate stops the camera; cleanup drops the engines."""

    PARAMETERS = PARAMETERS
    COMPONENT = "perception_pipeline"
    pipeline: PerceptionPipeline | None = None
    runner: PipelineRunner | None = None
    #: Several cameras (camera.sources or image_topics): they run there instead.
    multi: MultiCamera | None = None
    #: Called with each PipelineResult after publishing (the demo's terminal view).
    result_hook: Callable[[PipelineResult], None] | None = None
    #: Called with the events of the final flush when the camera has ended (the demo's summary).
    end_hook: Callable[[list[Any]], None] | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("perception_pipeline", **kwargs)

    def build(self) -> None:
        p = self.params
        self._frame_id = str(p["frame_id"])
        engine = lambda key: params_model_file(self, p, key)  # noqa: E731
        seg_cfg = (
            SEGMENTER.config(p, "segmentation.", model=engine("segmentation.model"))
            if p["segmentation.enabled"]
            else None
        )
        # The engine builder's detector engine must take every camera's frame in one call.
        det_model = params_model_file(self, p, "detector.model", batch=camera_count(p))
        detector = DETECTOR.config(p, "detector.", model=det_model)
        reader = (
            PLATE_READER.config(p, "plate_reader.", model=engine("plate_reader.model"))
            if p["plate_reader.enabled"]
            else None
        )
        tracker = TRACKER.config(p, "tracker.") if p["tracking.enabled"] else None
        consensus = PLATE_CONSENSUS.config(p, "plate_consensus.")
        if multi_camera_requested(p):
            self.multi = MultiCamera.build(self, detector, reader, tracker, consensus)
            return
        self.pipeline = PerceptionPipeline.build(
            detector, reader, seg_cfg, self.latency, tracker=tracker, consensus=consensus
        )
        self.pipeline.warmup()
        self.stages_ready(self.pipeline.detector, self.pipeline.plate_reader, self.pipeline.segmenter)
        self._camera_cfg = CAMERA.config(p, "camera.", source=resolve_file(str(p["camera.source"])))
        self.outputs = PipelineOutputs(self, p)

    def start(self) -> None:
        """Once the publishers are enabled: an inline camera runs the stages from its first frame."""
        if self.multi is not None:
            self.multi.start()
            return
        assert self.pipeline is not None
        inline = bool(self.params["camera.process_in_capture_thread"])
        runner = PipelineRunner(
            self.pipeline,
            self._camera_cfg,
            self._on_result,
            self._on_error,
            self._on_camera_end,
            enabled=lambda: self.processing,  # `enabled` false: the camera is read, the stages pause
            log=self.camera_log,
        )
        self.runner = runner.start(inline=inline, worker=not inline)
        self.track(self.create_timer(0.5, self._watch_camera))  # the source's state, its end

    def stop(self) -> None:
        super().stop()
        if self.runner is not None:
            self.runner.stop()
        if self.multi is not None:
            self.multi.stop()

    def release(self) -> None:
        if self.multi is not None:
            self.multi.release()
            self.multi = None
        if self.pipeline is not None:
            for stage in (self.pipeline.detector, self.pipeline.plate_reader, self.pipeline.segmenter):
                close_stage(stage)
        self.pipeline = None
        self.runner = None

    def on_shutdown(self, state: LifecycleState | None = None) -> TransitionCallbackReturn:
        if state is None:
            # Called in-process (the demo): the camera stops, the stopped runner and the publishers stay,
            # so its runner.finish() can still end the vehicles in view; destroy_node frees the rest.
            self.stop()
            return TransitionCallbackReturn.SUCCESS
        return super().on_shutdown(state)

    def apply_parameters(self, names: set[str]) -> None:
        """Live stage parameters: the stage is rebuilt around its engine and swapped into its step."""
        if self.multi is not None:
            self.multi.apply_parameters(names)
            return
        if self.pipeline is None:
            return
        p = self.params
        for step in self.pipeline.steps:
            if isinstance(step, DetectStep) and names & DETECTOR.names("detector.", live=True):
                cfg = DETECTOR.config(p, "detector.", model=step.stage.cfg.model)
                step.stage = rebuilt(step.stage, cfg)
            elif isinstance(step, SegmentStep) and names & SEGMENTER.names("segmentation.", live=True):
                cfg = SEGMENTER.config(p, "segmentation.", model=step.stage.cfg.model)
                step.stage = rebuilt(step.stage, cfg)
            elif isinstance(step, (ReadStep, ConsensusStep)) and names & PLATE_READER.names(
                "plate_reader.", live=True
            ):
                reader = step.stage if isinstance(step, ReadStep) else step.stage.reader
                new = rebuilt(reader, PLATE_READER.config(p, "plate_reader.", model=reader.cfg.model))
                if isinstance(step, ReadStep):
                    step.stage = new
                else:
                    step.stage.reader = new

    @property
    def running(self) -> bool:
        """True while frames still come."""
        return self.runner is not None and self.runner.running

    @property
    def frames(self) -> int:
        return self.runner.frames if self.runner is not None else 0

    def _watch_camera(self) -> None:
        """Report a source that is reconnecting or failed; flush the pipeline once it has ended."""
        if self.runner is None or self.runner.camera is None:
            return
        state = self.runner.camera.state
        status = camera_status(state)
        if state.status not in ENDED and status is not None and status[0] != OK:
            # /diagnostics only: the source logs each change of state itself (camera_log).
            self.diagnostics.report("camera", status[0], f"{state.status}: {status[1]}")
        self.runner.poll()

    def _on_camera_end(self, state: CameraState, events: list[Any]) -> None:
        self.outputs.publish_events(events, self._frame_id)
        if self.end_hook is not None:
            self.end_hook(events)
        self.diagnostics.report("camera", WARN, f"source {state.status}: {state.message}", ttl_s=None)
        self.get_logger().info(f"camera source {state.status} after {self.frames} frames")

    def _on_result(self, frame: Frame, result: PipelineResult) -> None:
        self.outputs.publish(frame.image, result, self._frame_id)
        if self.result_hook is not None:
            self.result_hook(result)
        self.diagnostics.set_value("frames", self.frames + 1)
        self.diagnostics.set_value("camera_dropped", frame.dropped)

    def _on_error(self, exc: Exception) -> None:
        self.warn_input("pipeline", f"{type(exc).__name__}: {exc}")


def main(args: list[str] | None = None) -> int:
    return run_node(PerceptionPipelineNode, args)
