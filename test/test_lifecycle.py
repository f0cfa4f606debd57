"""Lifecycle nodes as processes: autostart, the transitions a lifecycle manager drives (subscriptions
only while active, the engine loaded from configure to cleanup), a failed configure that exits 1 with
exit_on_error (launch's respawn), and parameters of the wrong type or given as ids at startup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ros_clients import change_state, lifecycle_state, own_domain, probe_node, set_params
from test_live_params import Frames, _labels, four_box_detector

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CONFIG = Path(__file__).resolve().parents[1] / "config"
DOMAIN = own_domain(59)
ENV = {"ROS_DOMAIN_ID": DOMAIN}


@pytest.mark.parametrize(
    ("params", "cause"),
    [
        ({"model": "missing.onnx"}, "configure: model file not found"),
        ({"conf_threshold": "high"}, "parameter 'conf_threshold': expected float, got str 'high'"),
        ({"max_detections": [1, 2]}, "parameter 'max_detections': expected int, got int array [1, 2]"),
        ({"conf_threshold": 1.5}, "parameter 'conf_threshold': 1.5 is outside [0.0, 1.0]"),
    ],
    ids=["missing_model", "wrong_type", "array_for_int", "out_of_range"],
)
def test_failed_configure_exits_1_with_exit_on_error(
    start_node: Any, params: dict[str, Any], cause: str
) -> None:
    # No params file: rcl keeps a file's value over a -p of another type (the wrong type never arrives).
    proc = start_node("detector", params={**params, "exit_on_error": True}, env=ENV)
    assert proc.proc.wait(60) == 1, proc.log()
    log = proc.log()
    assert log.count(cause) == 1 and "exiting with code 1" in log, log
    assert "Traceback" not in log, log


def test_transitions_and_ids_for_classes(start_node: Any, tmp_path: Path) -> None:
    """autostart false: nothing loaded, nothing subscribed until configure + activate; deactivate
    unsubscribes, cleanup lets reload parameters change; ``classes:=[1]`` (an id) works at startup."""
    from vision_msgs.msg import Detection2DArray

    model, labels = four_box_detector(tmp_path)
    proc = start_node(
        "detector",
        params_file=CONFIG / "detector.yaml",
        params={
            "model": str(tmp_path / "not_yet.onnx"),
            "labels": str(labels),
            "autostart": False,
            "classes": [1],
            "publish_annotated": False,
        },
        env=ENV,
    )
    with probe_node(DOMAIN) as node:
        frames = Frames(node, np.zeros((720, 1280, 3), np.uint8), Detection2DArray, "detections")
        assert lifecycle_state(node, "detector") == "unconfigured", proc.log()
        assert frames.pub.get_subscription_count() == 0
        # Unconfigured: a reload parameter is taken (the next configure reads it).
        assert set_params(node, "detector", model=str(model)).successful
        assert change_state(node, "detector", "configure") and lifecycle_state(node, "detector") == "inactive"
        node.spin_until(lambda: False, 1.0)
        assert frames.pub.get_subscription_count() == 0, "inactive: no image subscription"
        assert change_state(node, "detector", "activate"), proc.log()
        assert _labels(frames.next_answer(30.0)) == [("plate", 0.8), ("plate", 0.6)]  # classes [1]
        result = set_params(node, "detector", model="other.onnx")
        assert not result.successful and "is read at configure" in result.reason

        assert change_state(node, "detector", "deactivate")
        assert node.spin_until(lambda: frames.pub.get_subscription_count() == 0, 10.0)
        assert frames.silent(1.0)
        assert (
            change_state(node, "detector", "cleanup") and lifecycle_state(node, "detector") == "unconfigured"
        )
        assert set_params(node, "detector", classes=["car"]).successful
        assert change_state(node, "detector", "configure") and change_state(node, "detector", "activate")
        assert _labels(frames.next_answer(30.0)) == [("car", 0.9)]
        assert change_state(node, "detector", "shutdown")
        assert lifecycle_state(node, "detector") == "finalized"
    assert proc.stop() == 0 and "Traceback" not in proc.log(), proc.log()
