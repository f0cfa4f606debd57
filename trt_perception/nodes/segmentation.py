"""``segmentation`` node: ``sensor_msgs/Image`` -> ``mono8`` class mask (+ colour overlay).

Thin: parameters -> ``stages.segmenter.Segmenter``. Each image is converted (a view for bgr8), run
through the stage and the mask published on ``segmentation/mask`` with the input's header, at the
input or the network resolution. The overlay is drawn only while someone subscribes to it. Latency per
stage (preprocess, inference, postprocess, message, end_to_end, frame_age) and input problems go to
``/diagnostics``.
"""

from __future__ import annotations

import time
from typing import Any

from sensor_msgs.msg import Image

from ..io.images import numpy_to_image
from ..metrics.latency import END_TO_END
from ..ros.files import ENGINE_PARAMETERS, params_model_file
from ..ros.node_base import LIFECYCLE_PARAMETERS, ManagedPerceptionNode, run_node
from ..ros.params import Param
from ..ros.qos import reliable_qos
from ..stages.segmenter import Segmenter
from ._stages import SEGMENTER, close_stage, rebuilt

MESSAGE = "message"

PARAMETERS: tuple[Param, ...] = (
    *SEGMENTER.params(),
    *ENGINE_PARAMETERS,
    Param("image_topic", "camera/image_raw", "Input image topic (reliability follows its publishers)."),
    Param("mask_topic", "segmentation/mask", "Output mono8 class-index mask, header copied from the input."),
    Param("overlay_topic", "segmentation/overlay", "Colour overlay (bgr8), drawn only while subscribed."),
    Param("publish_overlay", True, "Offer the overlay topic at all."),
    *LIFECYCLE_PARAMETERS,
)


class SegmentationNode(ManagedPerceptionNode):
    """Lifecycle: configure loads the segmenter, activate subscribes to the images."""

    PARAMETERS = PARAMETERS
    COMPONENT = "segmentation"
    segmenter: Segmenter | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("segmentation", **kwargs)

    def build(self) -> None:
        p = self.params
        model = params_model_file(self, p)
        self.segmenter = Segmenter(SEGMENTER.config(p, model=model), self.latency)
        self.segmenter.warmup()
        self.stages_ready(self.segmenter)
        seg = self.segmenter
        w, h = seg.network_size(int(p["input_width"]) or 640, int(p["input_height"]) or 352)
        for key, value in (
            ("model", model),
            ("backend", seg.engine.backend),
            ("argmax", p["argmax"]),
            ("classes", ",".join(seg.class_names)),
        ):
            self.diagnostics.set_value(key, value)
        self.get_logger().info(
            f"segmentation ready: {model} ({seg.engine.backend}, argmax {p['argmax']}, network {w}x{h}, "
            f"mask at {p['output_resolution']} resolution, classes {seg.class_names})"
        )
        self.mask_pub = self.publisher(Image, str(p["mask_topic"]), reliable_qos(2))
        # One Image per topic, refilled each frame (publish serialises before it returns): no
        # frame-sized allocation per frame.
        self._mask_msg, self._overlay_msg = Image(), Image()
        self.overlay_pub = (
            self.publisher(Image, str(p["overlay_topic"]), reliable_qos(2)) if p["publish_overlay"] else None
        )

    def start(self) -> None:
        # Depth 1: a late mask is worth less than a fresh one.
        self.subscribe_images(str(self.params["image_topic"]), self.on_image, depth=1)

    def release(self) -> None:
        close_stage(self.segmenter)
        self.segmenter = None

    def apply_parameters(self, names: set[str]) -> None:
        if self.segmenter is not None and names & SEGMENTER.names(live=True):
            cfg = SEGMENTER.config(self.params, model=self.segmenter.cfg.model)
            self.segmenter = rebuilt(self.segmenter, cfg)

    def on_image(self, msg: Image) -> None:
        start = time.perf_counter()
        frame = self.input_frame(msg, self.segmenter is not None)
        if frame is None or self.segmenter is None:
            return
        bgr, stamp = frame  # its age was recorded on arrival (subscribe_images)
        result = self.segmenter(bgr, stamp)
        with self.latency.measure(MESSAGE):
            out = numpy_to_image(result.mask, "mono8", self._mask_msg, msg.header)
        self.mask_pub.publish(out)
        self.latency.record(END_TO_END, (time.perf_counter() - start) * 1e3)
        if self.overlay_pub is not None and self.overlay_pub.get_subscription_count() > 0:
            overlay = result.overlay(bgr, self.segmenter.cfg.overlay_alpha)
            self.overlay_pub.publish(numpy_to_image(overlay, "bgr8", self._overlay_msg, msg.header))


def main(args: list[str] | None = None) -> int:
    return run_node(SegmentationNode, args)
