"""One camera's result publishers for ``perception_pipeline``: the single camera's topics as they are
(``namespace`` empty), or each camera's under its own namespace (``<name>/detections``...).

``detections``, ``plates`` (when the reader runs), ``tracks`` (with tracking), ``plate_events``
(reliable, the last 100 kept for late subscribers), ``segmentation/mask`` (with the segmenter), the
camera frame itself (``publish_image``) and the annotated view (drawn only while subscribed), every
message with the header the caller gives (that camera's frame_id and its frame's stamp).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String
from vision_msgs.msg import Detection2DArray

from ..io.images import numpy_to_image
from ..io.stamps import set_time
from ..pipeline.perception import PipelineResult
from ..ros.detection_msgs import DetectionMsgBuilder, readings_to_msg, tracks_to_msg
from ..ros.node_base import ManagedPerceptionNode
from ..ros.qos import latched_qos, reliable_qos
from ..vision.draw import draw_result


class PipelineOutputs:
    """The publishers of one camera's results (lifecycle publishers of ``node``: silent unless active).

    ``image``: also offer the camera frame on ``image_topic`` when ``publish_image`` is set (False for
    frames that came from an image topic: they are published already).
    """

    def __init__(
        self, node: ManagedPerceptionNode, params: Mapping[str, Any], namespace: str = "", image: bool = True
    ) -> None:
        topic = lambda key: f"{namespace}/{params[key]}" if namespace else str(params[key])  # noqa: E731
        qos = reliable_qos(10)
        self._det_msg = DetectionMsgBuilder()  # reuses its message: one per camera
        # One Image per image topic, refilled each frame (publish serialises before it returns): a
        # fresh frame-sized buffer per frame cost camera_bridge 0.3 ms at 640x480.
        self._image_msg, self._annotated_msg, self._mask_msg = Image(), Image(), Image()
        self.detections = node.publisher(Detection2DArray, topic("detections_topic"), qos)
        self.plates = node.publisher(Detection2DArray, topic("plates_topic"), qos)
        self._read_plates = bool(params["plate_reader.enabled"])
        self.tracks = node.publisher(Detection2DArray, topic("tracks_topic"), qos)
        # Events are rare and must not be lost: reliable, and the last 100 kept for late subscribers.
        self.events = node.publisher(String, topic("plate_events_topic"), latched_qos(100))
        self.image = (
            node.publisher(Image, topic("image_topic"), reliable_qos(2))
            if image and params["publish_image"]
            else None
        )
        self.annotated = node.publisher(Image, topic("annotated_topic"), reliable_qos(2))
        self.mask = (
            node.publisher(Image, topic("segmentation.mask_topic"), reliable_qos(2))
            if params["segmentation.enabled"]
            else None
        )

    def publish(self, bgr: np.ndarray, result: PipelineResult, frame_id: str) -> None:
        header = Header(frame_id=frame_id)
        set_time(header.stamp, result.stamp_ns)
        self.detections.publish(self._det_msg(result.detections, header))
        if self._read_plates:
            self.plates.publish(readings_to_msg(result.plates, header))
        if result.tracks is not None:
            self.tracks.publish(tracks_to_msg(result.tracks, header, result.plate_of()))
        self.publish_events(result.events, frame_id)
        if self.mask is not None and result.segmentation is not None:
            self.mask.publish(numpy_to_image(result.segmentation.mask, "mono8", self._mask_msg, header))
        if self.image is not None:
            self.image.publish(numpy_to_image(bgr, "bgr8", self._image_msg, header))
        if self.annotated.get_subscription_count() > 0:
            annotated = draw_result(bgr, result)
            self.annotated.publish(numpy_to_image(annotated, "bgr8", self._annotated_msg, header))

    def publish_events(self, events: list[Any], frame_id: str) -> None:
        for event in events:
            self.events.publish(String(data=event.to_json(frame_id)))
