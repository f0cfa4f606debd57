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

from ..inference.engine import EngineError
from ..io.images import numpy_to_image
from ..metrics.latency import END_TO_END
from ..modelops.argmax_fusion import parse_divisor
from ..ros.diagnostics import WARN
from ..ros.files import ENGINE_PARAMETERS, params_model_file
from ..ros.node_base import PerceptionNode, run_node
from ..ros.params import Param
from ..ros.qos import reliable_qos
from ..stages.segmenter import Segmenter, SegmenterConfig

MESSAGE = "message"

PARAMETERS: tuple[Param, ...] = (
    Param(
        "model",
        "models/segmenter.onnx",
        "ONNX model or TensorRT engine (relative paths: cwd, then the package share).",
    ),
    Param(
        "backend", "auto", "auto | onnxruntime | openvino | tensorrt (auto: .onnx -> ONNX Runtime, .xml -> OpenVINO, .engine -> TensorRT)."
    ),
    *ENGINE_PARAMETERS,
    Param(
        "argmax",
        "cpu",
        "cpu (OpenCV per-plane upsample + running max, exact; ~5x faster than upsample + numpy argmax) | "
        "fused (argmax inside the graph, uint8 mask out: ~5x faster than upsample + numpy argmax for ~0.45 mIoU "
        "points with the default fusion_divisor 1x4; as fast as cpu on ORT CPU; for engines "
        "built with the mask in the graph) | gpu (TensorRT: exact NVRTC upsample+argmax kernel on the device logits).",
    ),
    Param(
        "fusion_mode",
        "fused-argmax",
        "argmax=fused graph: fused-argmax | argmax | reducemax | fused-reducemax.",
    ),
    Param(
        "fusion_divisor",
        "1x4",
        "Fused modes take the argmax at network size / divisor, then resize nearest: ROWSxCOLS or one int "
        "for both (1x4 keeps thin near-horizontal road markings that 2 loses).",
    ),
    Param(
        "fusion_argmax_impl",
        "delta",
        "argmax=fused graph's argmax: delta (class-0 difference planes, fastest on ORT CPU) | compare | op.",
    ),
    Param(
        "output_resolution", "input", "Mask size: input (the camera image's) | network (the network input's)."
    ),
    Param("input_width", 640, "Network input width (multiple of 32); 0 = model's, else the image's rounded."),
    Param(
        "input_height", 352, "Network input height (multiple of 32); 0 = model's, else the image's rounded."
    ),
    Param(
        "class_names", [], "Class names by index; empty reads the model metadata, then the sample classes."
    ),
    Param("palette", [], "Overlay colours per class as 'B,G,R' strings; empty uses the built-in palette."),
    Param("overlay_alpha", 0.5, "Overlay opacity of the class colours (0..1)."),
    Param("image_topic", "camera/image_raw", "Input image topic (sensor-data QoS)."),
    Param("mask_topic", "segmentation/mask", "Output mono8 class-index mask, header copied from the input."),
    Param("overlay_topic", "segmentation/overlay", "Colour overlay (bgr8), drawn only while subscribed."),
    Param("publish_overlay", True, "Offer the overlay topic at all."),
    Param(
        "qos_depth", 2, "Image subscription queue depth (small: a late mask is worth less than a fresh one)."
    ),
)


def segmenter_config(p: dict[str, Any], model: str) -> SegmenterConfig:
    return SegmenterConfig(
        model=model,
        backend=str(p["backend"]),
        argmax=str(p["argmax"]),
        output_resolution=str(p["output_resolution"]),
        input_width=int(p["input_width"]),
        input_height=int(p["input_height"]),
        fusion_mode=str(p["fusion_mode"]),
        fusion_divisor=parse_divisor(str(p["fusion_divisor"])),
        fusion_argmax_impl=str(p["fusion_argmax_impl"]),
        class_names=[str(c) for c in p["class_names"] if str(c)],
        palette=[parse_color(c) for c in p["palette"] if str(c)],
        overlay_alpha=float(p["overlay_alpha"]),
    )


def parse_color(text: str) -> tuple[int, int, int]:
    try:
        b, g, r = (int(v) for v in str(text).split(","))
    except ValueError:
        raise ValueError(f"palette entry '{text}' is not 'B,G,R' (three ints 0..255)") from None
    if not all(0 <= v <= 255 for v in (b, g, r)):
        raise ValueError(f"palette entry '{text}' has values outside 0..255")
    return b, g, r


class SegmentationNode(PerceptionNode):
    PARAMETERS = PARAMETERS
    COMPONENT = "segmentation"

    def __init__(self) -> None:
        super().__init__("segmentation")
        p = self.params
        self.segmenter: Segmenter | None = None
        try:
            model = params_model_file(self, p)
            self.segmenter = Segmenter(segmenter_config(p, model), self.latency)
            self.segmenter.warmup()
            for warning in self.segmenter.warnings:  # a fact the model lacks (e.g. labels): WARN, not silence
                self.get_logger().warning(warning)
                self.diagnostics.report("model_info", WARN, warning, ttl_s=None)
            self.latency.reset()  # the warm-up frame is not a camera frame
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
        except (EngineError, ValueError, OSError, RuntimeError) as exc:
            self.startup_error("model", f"cannot start the segmenter: {exc}")
        self.mask_pub = self.create_publisher(Image, str(p["mask_topic"]), reliable_qos(2))
        self.overlay_pub = (
            self.create_publisher(Image, str(p["overlay_topic"]), reliable_qos(2))
            if p["publish_overlay"]
            else None
        )
        self.subscribe_images(str(p["image_topic"]), self.on_image, int(p["qos_depth"]))

    def on_image(self, msg: Image) -> None:
        start = time.perf_counter()
        frame = self.input_frame(msg, self.segmenter is not None)
        if frame is None or self.segmenter is None:
            return
        bgr, stamp = frame
        if stamp:
            self.latency.record_frame_age(stamp, self.get_clock().now().nanoseconds)
        result = self.segmenter(bgr, stamp)
        with self.latency.measure(MESSAGE):
            out = numpy_to_image(result.mask, "mono8", header=msg.header)
        self.mask_pub.publish(out)
        self.latency.record(END_TO_END, (time.perf_counter() - start) * 1e3)
        if self.overlay_pub is not None and self.overlay_pub.get_subscription_count() > 0:
            overlay = result.overlay(bgr, float(self.params["overlay_alpha"]))
            self.overlay_pub.publish(numpy_to_image(overlay, "bgr8", header=msg.header))


def main(args: list[str] | None = None) -> int:
    return run_node(SegmentationNode, args)
