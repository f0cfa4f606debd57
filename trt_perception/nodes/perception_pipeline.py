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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String
from vision_msgs.msg import Detection2DArray

from ..inference.engine import EngineError
from ..pipeline.perception import PerceptionPipeline, PipelineResult
from ..ros.detection_msgs import DetectionMsgBuilder, readings_to_msg, tracks_to_msg
from ..ros.diagnostics import WARN
from ..ros.files import params_model_file, resolve_file
from ..ros.image_conversion import numpy_to_image
from ..ros.node_base import PerceptionNode, run_node
from ..ros.params import Param
from ..ros.qos import latched_qos, reliable_qos
from ..stages.camera import FAILED, FINISHED, STOPPED, CameraConfig, CameraError, CameraSource, Frame
from ..stages.plate_consensus import PlateConsensusConfig
from ..stages.tracker import TrackerConfig
from ..vision.draw import draw_result
from ._detection_common import (
    DETECTOR_PARAMETERS,
    READER_PARAMETERS,
    config_from_params,
    config_params,
    detector_config,
    prefixed,
    reader_config,
)

#: Camera states after which no frame will come.
ENDED = (FINISHED, STOPPED, FAILED)

PARAMETERS: tuple[Param, ...] = (
    Param(
        "camera.source",
        "0",
        "Camera: device index or /dev/videoN, video file, image folder, URL or GStreamer pipeline.",
    ),
    Param("camera.rate_hz", 0.0, "Most frames per second; 0 = the source's rate."),
    Param("camera.loop", False, "Restart a file or folder at its end."),
    Param("camera.width", 0, "Resize frames to this width (0 keeps the source size)."),
    Param("camera.height", 0, "Resize frames to this height (0 keeps the source size)."),
    Param(
        "camera.process_in_capture_thread",
        True,
        "Run the stages in the capture thread (no hand-over); false: a worker takes the newest frame, "
        "so a pipeline slower than a live camera never holds up its driver.",
    ),
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
    Param("segmentation.model", "models/segmenter.onnx", "Segmentation model."),
    Param("segmentation.backend", "auto", "Segmentation backend."),
    Param(
        "segmentation.argmax",
        "cpu",
        "Where the per-pixel argmax runs: cpu | fused (in the ONNX graph) | gpu.",
    ),
    Param(
        "segmentation.input_width",
        640,
        "Segmenter network input width (multiple of 32); 0 = model's, else the image's rounded.",
    ),
    Param(
        "segmentation.input_height",
        352,
        "Segmenter network input height (multiple of 32); 0 = model's, else the image's rounded.",
    ),
    Param("segmentation.mask_topic", "segmentation/mask", "mono8 class-index mask topic."),
    *prefixed(DETECTOR_PARAMETERS, "detector."),
    *prefixed(READER_PARAMETERS, "plate_reader."),
    *config_params(TrackerConfig, "tracker."),
    *config_params(PlateConsensusConfig, "plate_consensus."),
)


class PerceptionPipelineNode(PerceptionNode):
    PARAMETERS = PARAMETERS
    COMPONENT = "perception_pipeline"

    def __init__(self) -> None:
        super().__init__("perception_pipeline")
        p = self.params
        self.pipeline: PerceptionPipeline | None = None
        self.camera: CameraSource | None = None
        self.frames = 0
        #: Called with each PipelineResult after publishing (the demo's terminal view).
        self.result_hook: Callable[[PipelineResult], None] | None = None
        self._stop = threading.Event()
        self._frame_id = str(p["frame_id"])
        self._det_msg = DetectionMsgBuilder()
        self._camera_status = ""
        camera_cfg = None
        try:
            engine = lambda key: params_model_file(self, p, key)  # noqa: E731
            seg_cfg = None
            if p["segmentation.enabled"]:
                from ..stages.segmenter import SegmenterConfig

                seg_cfg = SegmenterConfig(
                    model=engine("segmentation.model"),
                    backend=str(p["segmentation.backend"]),
                    argmax=str(p["segmentation.argmax"]),
                    input_width=int(p["segmentation.input_width"]),
                    input_height=int(p["segmentation.input_height"]),
                )
            tracking = bool(p["tracking.enabled"])
            self.pipeline = PerceptionPipeline.build(
                detector_config(p, "detector.", model=engine("detector.model")),
                reader_config(p, "plate_reader.", model=engine("plate_reader.model"))
                if p["plate_reader.enabled"]
                else None,
                seg_cfg,
                self.latency,
                tracker=config_from_params(TrackerConfig, p, "tracker.") if tracking else None,
                consensus=config_from_params(PlateConsensusConfig, p, "plate_consensus."),
            )
            self.pipeline.warmup()
            camera_cfg = CameraConfig(
                source=resolve_file(str(p["camera.source"])),
                rate_hz=float(p["camera.rate_hz"]),
                loop=bool(p["camera.loop"]),
                width=int(p["camera.width"]),
                height=int(p["camera.height"]),
            )
        except (EngineError, CameraError, ValueError, OSError, ImportError) as exc:
            self.startup_error("startup", f"cannot start the pipeline: {exc}")
        qos = reliable_qos(10)
        self.det_pub = self.create_publisher(Detection2DArray, str(p["detections_topic"]), qos)
        self.plate_pub = self.create_publisher(Detection2DArray, str(p["plates_topic"]), qos)
        self.tracks_pub = self.create_publisher(Detection2DArray, str(p["tracks_topic"]), qos)
        # Events are rare and must not be lost: reliable, and the last 100 kept for late subscribers.
        self.events_pub = self.create_publisher(String, str(p["plate_events_topic"]), latched_qos(100))
        self.image_pub = self.create_publisher(Image, str(p["image_topic"]), reliable_qos(2))
        self.annotated_pub = self.create_publisher(Image, str(p["annotated_topic"]), reliable_qos(2))
        self.mask_pub = (
            self.create_publisher(Image, str(p["segmentation.mask_topic"]), reliable_qos(2))
            if p["segmentation.enabled"]
            else None
        )
        self._worker: threading.Thread | None = None
        if self.pipeline is not None and camera_cfg is not None:
            self._start_camera(camera_cfg, bool(p["camera.process_in_capture_thread"]))

    def _start_camera(self, cfg: CameraConfig, inline: bool) -> None:
        """Started once the publishers exist: an inline camera calls ``_process`` from its first frame."""
        try:
            self.camera = CameraSource(cfg, on_frame=self._on_frame if inline else None).start()
        except CameraError as exc:
            self.startup_error("startup", f"cannot start the pipeline: {exc}")
            return
        if inline:  # the capture thread does the work; a timer watches the source's state
            self.create_timer(0.5, self._watch_camera)
        else:
            self._worker = threading.Thread(target=self._run, name="perception-pipeline", daemon=True)
            self._worker.start()

    @property
    def running(self) -> bool:
        """True while frames still come: the worker lives, or the inline camera has not ended."""
        if self._worker is not None:
            return self._worker.is_alive()
        return self.camera is not None and self.camera.state.status not in ENDED

    def _on_frame(self, frame: Frame) -> None:
        if not self._stop.is_set():
            self._process(frame)

    def _run(self) -> None:
        assert self.camera is not None
        while not self._stop.is_set():
            frame = self.camera.read(timeout_s=0.5)
            if frame is not None:
                self._process(frame)
            elif not self._watch_camera():
                return

    def _watch_camera(self) -> bool:
        """Report a source that finished, stopped or is reconnecting; False once it is over."""
        if self.camera is None:
            return False
        state = self.camera.state
        if state.status in ENDED:
            if self._camera_status != state.status:
                self._camera_status = state.status
                self._publish_events(self.pipeline.flush() if self.pipeline is not None else [])
                self.diagnostics.report("camera", WARN, f"source {state.status}: {state.message}", ttl_s=None)
                self.get_logger().info(f"camera source {state.status} after {self.frames} frames")
            return False
        if state.status != "connected":
            self.warn_input("camera", f"{state.status}: {state.message}")
        return True

    def _process(self, frame: Frame) -> None:
        # Capture -> the thread that runs the stages (the camera hand-over; ~0 when inline).
        self.latency.record_frame_age(frame.stamp_ns, time.time_ns())
        assert self.pipeline is not None
        try:
            result = self.pipeline(frame.image, frame.stamp_ns)
            self._publish(frame.image, result, self._frame_id)
            if self.result_hook is not None:
                self.result_hook(result)
        except Exception as exc:  # a bad frame must not end the capture or the worker thread
            self.warn_input("pipeline", f"{type(exc).__name__}: {exc}")
        self.frames += 1
        self.diagnostics.set_value("frames", self.frames)
        self.diagnostics.set_value("camera_dropped", frame.dropped)

    def _publish(self, bgr: Any, result: PipelineResult, frame_id: str) -> None:
        header = Header(frame_id=frame_id)
        header.stamp = Time(sec=result.stamp_ns // 1_000_000_000, nanosec=result.stamp_ns % 1_000_000_000)
        self.det_pub.publish(self._det_msg(result.detections, header))
        if self.pipeline is not None and self.pipeline.plate_reader is not None:
            self.plate_pub.publish(readings_to_msg(result.plates, header))
        if result.tracks is not None:
            self.tracks_pub.publish(tracks_to_msg(result.tracks, header, result.plate_of()))
        self._publish_events(result.events)
        if self.mask_pub is not None and result.segmentation is not None:
            self.mask_pub.publish(numpy_to_image(result.segmentation.mask, "mono8", header=header))
        if self.params["publish_image"]:
            self.image_pub.publish(numpy_to_image(bgr, "bgr8", header=header))
        if self.annotated_pub.get_subscription_count() > 0:
            self.annotated_pub.publish(numpy_to_image(draw_result(bgr, result), "bgr8", header=header))

    def _publish_events(self, events: list[Any]) -> None:
        for event in events:
            self.events_pub.publish(String(data=event.to_json(self._frame_id)))

    def on_shutdown(self) -> None:
        self._stop.set()
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(5.0)
        if self.camera is not None:
            self.camera.stop()  # joins the capture thread, which may be finishing a frame


def main(args: list[str] | None = None) -> int:
    return run_node(PerceptionPipelineNode, args)
