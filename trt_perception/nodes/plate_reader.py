"""``plate_reader`` node: image + detections (matched by header stamp) -> plate texts.

Publishes ``vision_msgs/Detection2DArray`` on ``plates``: one detection per read plate, box from the
detector, ``class_id`` = text, ``score`` = reading confidence, stamped with the image's header.
Pairs messages with ``message_filters`` where importable, else with a bounded ``StampMatcher``.
"""

from __future__ import annotations

import time
from typing import Any

from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from ..io.images import numpy_to_image
from ..io.stamps import stamp_ns
from ..metrics.latency import END_TO_END
from ..pipeline.stamp_sync import StampMatcher
from ..ros.detection_msgs import msg_to_detections, readings_to_msg
from ..ros.files import ENGINE_PARAMETERS, params_model_file
from ..ros.node_base import LIFECYCLE_PARAMETERS, ManagedPerceptionNode, run_node
from ..ros.params import Param
from ..ros.qos import reliable_qos, sensor_qos
from ..stages.plate_reader import PlateReader
from ..vision.draw import draw_readings
from ._stages import PLATE_READER, close_stage, rebuilt

PARAMETERS: tuple[Param, ...] = (
    *PLATE_READER.params(),
    *ENGINE_PARAMETERS,
    Param("image_topic", "camera/image_raw", "Input image topic (reliability follows its publishers)."),
    Param("detections_topic", "detections", "Detector output (vision_msgs/Detection2DArray)."),
    Param("plates_topic", "plates", "Output: one Detection2D per read plate, class_id = text."),
    Param("annotated_topic", "plates/image", "Annotated image topic, drawn only while subscribed."),
    Param("publish_annotated", True, "Offer the annotated image at all."),
    Param("sync_queue_size", 10, "Messages kept per input while waiting for the matching stamp."),
    Param("sync_slop", 0.0, "Largest stamp difference (s) still paired; 0 = exact stamps."),
    Param("use_message_filters", True, "Use message_filters where importable (else the built-in matcher)."),
    *LIFECYCLE_PARAMETERS,
)


class PlateReaderNode(ManagedPerceptionNode):
    """Lifecycle: configure loads the reader, activate subscribes to the image and detection pair."""

    PARAMETERS = PARAMETERS
    COMPONENT = "plate_reader"
    reader: PlateReader | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("plate_reader", **kwargs)

    def build(self) -> None:
        p = self.params
        model = params_model_file(self, p)
        self.reader = PlateReader(PLATE_READER.config(p, model=model), self.latency)
        self.reader.warmup()
        self.stages_ready(self.reader)
        self.diagnostics.set_value("model", model)
        self.get_logger().info(
            f"plate reader ready: {model} ({self.reader.decoder}, {self.reader.width}x{self.reader.height})"
        )
        self.pub = self.publisher(Detection2DArray, str(p["plates_topic"]), reliable_qos(10))
        self.annotated_pub = (
            self.publisher(Image, str(p["annotated_topic"]), reliable_qos(2))
            if p["publish_annotated"]
            else None
        )

    def release(self) -> None:
        close_stage(self.reader)
        self.reader = None

    def apply_parameters(self, names: set[str]) -> None:
        if self.reader is not None and names & PLATE_READER.names(live=True):
            self.reader = rebuilt(self.reader, PLATE_READER.config(self.params, model=self.reader.cfg.model))

    def start(self) -> None:
        p = self.params
        queue, slop = int(p["sync_queue_size"]), float(p["sync_slop"])
        mf = None
        if p["use_message_filters"]:
            try:
                import message_filters as mf
            except ImportError:
                mf = None
        if mf is not None:
            subs = [
                mf.Subscriber(self, Image, str(p["image_topic"]), qos_profile=sensor_qos(1)),
                mf.Subscriber(
                    self, Detection2DArray, str(p["detections_topic"]), qos_profile=reliable_qos(10)
                ),
            ]
            for sub in subs:
                self.track(sub.sub)
            sync = (
                mf.ApproximateTimeSynchronizer(subs, queue, slop)
                if slop > 0
                else mf.TimeSynchronizer(subs, queue)
            )
            sync.registerCallback(self.guarded("pair", self.on_pair))
            self._keep = (subs, sync)
            self.diagnostics.set_value("sync", "message_filters")
            return
        self.matcher = StampMatcher(queue, int(slop * 1e9))
        # Depth 1 in DDS: the matcher holds the queue that waits for the detections.
        self.subscribe_images(str(p["image_topic"]), lambda m: self._add("a", m), depth=1)
        self.track(
            self.create_subscription(
                Detection2DArray,
                str(p["detections_topic"]),
                self.guarded("detections", lambda m: self._add("b", m)),
                reliable_qos(10),
            )
        )
        self.diagnostics.set_value("sync", "stamp_matcher")

    def _add(self, side: str, msg: Any) -> None:
        pair = self.matcher.add(side, stamp_ns(msg.header), msg)
        if pair is not None:
            self.on_pair(pair[0], pair[1])

    def on_pair(self, image: Image, detections: Detection2DArray) -> None:
        start = time.perf_counter()
        frame = self.input_frame(image, self.reader is not None)
        if frame is None or self.reader is None:
            return
        bgr, stamp = frame
        readings = self.reader(bgr, msg_to_detections(detections), stamp)
        self.pub.publish(readings_to_msg(readings, image.header))
        self.latency.record(END_TO_END, (time.perf_counter() - start) * 1e3)
        if self.annotated_pub is not None and self.annotated_pub.get_subscription_count() > 0:
            self.annotated_pub.publish(
                numpy_to_image(draw_readings(bgr, readings), "bgr8", header=image.header)
            )


def main(args: list[str] | None = None) -> int:
    return run_node(PlateReaderNode, args)
