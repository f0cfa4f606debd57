"""The ``segmentation`` node as its own process: masks with the input's header, bad input survived."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import segmentation_standin as standin
from conftest import CONFIG, MODELS

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture
def model() -> Path:
    return MODELS / "segmenter.onnx"


def _image(bgr: np.ndarray, stamp_s: int, frame_id: str = "cam"):  # type: ignore[no-untyped-def]
    from trt_perception.io.images import numpy_to_image

    msg = numpy_to_image(bgr, "bgr8")
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp_s, 123
    msg.header.frame_id = frame_id
    return msg


def test_node_publishes_mask_with_header_and_survives_bad_input(start_node, ros_node, model: Path) -> None:  # type: ignore[no-untyped-def]
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    from trt_perception.ros.qos import reliable_qos

    node = start_node(
        "segmentation",
        params_file=CONFIG / "segmentation.yaml",
        params={"model": str(model), "argmax": "fused", "diagnostics_period": 0.5},
    )
    masks: list[Image] = []
    diags: list[DiagnosticArray] = []
    pub = ros_node.create_publisher(Image, "camera/image_raw", reliable_qos(5))
    ros_node.create_subscription(Image, "segmentation/mask", masks.append, reliable_qos(5))
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    assert ros_node.spin_until(lambda: pub.get_subscription_count() > 0, 30), node.log()

    bgr, _ = standin.synthetic_frame(240, 320, seed=2)

    def send_until_mask(stamp_s: int) -> Image:
        def got() -> bool:
            if not any(m.header.stamp.sec == stamp_s for m in masks):
                pub.publish(_image(bgr, stamp_s))
                return False
            return True

        assert ros_node.spin_until(got, 30), node.log()
        return next(m for m in masks if m.header.stamp.sec == stamp_s)

    mask = send_until_mask(41)
    assert (mask.encoding, mask.width, mask.height) == ("mono8", 320, 240)  # input resolution
    assert (mask.header.frame_id, mask.header.stamp.nanosec) == ("cam", 123)
    assert set(np.frombuffer(bytes(mask.data), np.uint8)) <= {0, 1, 2, 3}

    bad = _image(bgr, 50)
    bad.encoding = "32FC1"  # not a colour image
    pub.publish(bad)
    empty = Image(encoding="bgr8", height=0, width=0, step=0)  # zero-size frame
    empty.header.stamp.sec = 51
    pub.publish(empty)

    def warned() -> bool:
        return any(s.level >= b"\x01" and "input" in s.message for d in diags for s in d.status)

    assert ros_node.spin_until(warned, 15), node.log()
    assert node.alive()
    send_until_mask(42)  # still serving after the bad frames
    keys = {kv.key for s in diags[-1].status for kv in s.values}  # every group of the node's statuses
    assert {"preprocess.mean_ms", "inference.mean_ms", "postprocess.mean_ms", "end_to_end.mean_ms"} <= keys
