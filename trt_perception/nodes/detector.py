"""``detector`` node: ``sensor_msgs/Image`` -> ``vision_msgs/Detection2DArray``.

Thin: parameters -> ``stages.detector.Detector``; each image is converted (a view for bgr8), run
through the stage and published with the input's header. The annotated image is drawn only while
someone subscribes to it. Latency per stage and input problems go to ``/diagnostics``.

With ``tracking`` the detections also go through ``stages.tracker.Tracker`` and the tracked objects
are published on ``tracks_topic`` (Detection2DArray, track ID in ``Detection2D.id``).
"""

from __future__ import annotations

import time
from typing import Any

from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from ..io.images import numpy_to_image
from ..metrics.latency import END_TO_END
from ..ros.detection_msgs import DetectionMsgBuilder, tracks_to_msg
from ..ros.files import ENGINE_PARAMETERS, params_model_file
from ..ros.node_base import LIFECYCLE_PARAMETERS, ManagedPerceptionNode, run_node
from ..ros.params import Param
from ..ros.qos import reliable_qos
from ..stages.detector import Detector
from ..stages.tracker import Tracker
from ..vision.draw import draw_detections, draw_tracks
from ._stages import DETECTOR, TRACKER, close_stage, rebuilt

MESSAGE = "message"

PARAMETERS: tuple[Param, ...] = (
    *DETECTOR.params(),
    *ENGINE_PARAMETERS,
    Param(
        "image_topic",
        "camera/image_raw",
        "Input image topic (reliability follows its publishers; depth 1, 2 when reliable: the newest frame).",
    ),
    Param("detections_topic", "detections", "Output vision_msgs/Detection2DArray topic."),
    Param("annotated_topic", "detections/image", "Annotated image topic, drawn only while subscribed."),
    Param("publish_annotated", True, "Offer the annotated image at all."),
    Param("tracking", False, "Track the detections and publish them with track IDs on tracks_topic."),
    Param("tracks_topic", "tracks", "Tracked objects (Detection2DArray, id = track ID) when tracking."),
    *TRACKER.params("tracker."),
    *LIFECYCLE_PARAMETERS,
)


class DetectorNode(ManagedPerceptionNode):
    """Lifecycle: configure loads the model (and the tracker), activate subscribes to the images."""

    PARAMETERS = PARAMETERS
    COMPONENT = "detector"
    detector: Detector | None = None
    tracker: Tracker | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("detector", **kwargs)

    def build(self) -> None:
        p = self.params
        model = params_model_file(self, p)
        self.detector = Detector(DETECTOR.config(p, model=model), self.latency)
        self.detector.warmup()
        self.stages_ready(self.detector)
        self.diagnostics.set_value("model", model)
        self.diagnostics.set_value("backend", self.detector.engine.backend)
        self.get_logger().info(
            f"detector ready: {model} ({self.detector.engine.backend}, decoder {self.detector.info.decoder}, "
            f"input {self.detector.input_size[0]}x{self.detector.input_size[1]}, labels {self.detector.labels})"
        )
        self.pub = self.publisher(Detection2DArray, str(p["detections_topic"]), reliable_qos(10))
        self.tracks_pub = None
        if p["tracking"]:
            self.tracker = Tracker(TRACKER.config(p, "tracker."), self.latency)
            self.tracks_pub = self.publisher(Detection2DArray, str(p["tracks_topic"]), reliable_qos(10))
        self._det_msg = DetectionMsgBuilder()  # reused message, or its CDR bytes: ~0.1 ms less per frame
        self.annotated_pub = (
            self.publisher(Image, str(p["annotated_topic"]), reliable_qos(2))
            if p["publish_annotated"]
            else None
        )

    def start(self) -> None:
        # Depth 1: a detector slower than its camera answers the newest frame, not a stale queue.
        self.subscribe_images(str(self.params["image_topic"]), self.on_image, depth=1)

    def release(self) -> None:
        close_stage(self.detector)
        self.detector = self.tracker = None

    def apply_parameters(self, names: set[str]) -> None:
        if self.detector is not None and names & DETECTOR.names(live=True):
            cfg = DETECTOR.config(self.params, model=self.detector.cfg.model)
            self.detector = rebuilt(self.detector, cfg)

    def on_image(self, msg: Image) -> None:
        start = time.perf_counter()
        frame = self.input_frame(msg, self.detector is not None)
        if frame is None or self.detector is None:
            return
        bgr, stamp = frame  # its age was recorded on arrival (subscribe_images)
        dets = self.detector(bgr, stamp)
        with self.latency.measure(MESSAGE):
            out = self._det_msg(dets, msg.header)
        self.pub.publish(out)
        tracks = None
        if self.tracker is not None and self.tracks_pub is not None:
            tracks = self.tracker(dets, stamp)
            self.tracks_pub.publish(tracks_to_msg(tracks, msg.header))
        self.latency.record(END_TO_END, (time.perf_counter() - start) * 1e3)
        if self.annotated_pub is not None and self.annotated_pub.get_subscription_count() > 0:
            img = draw_tracks(bgr, tracks) if tracks is not None else draw_detections(bgr, dets)
            self.annotated_pub.publish(numpy_to_image(img, "bgr8", header=msg.header))


def main(args: list[str] | None = None) -> int:
    return run_node(DetectorNode, args)
