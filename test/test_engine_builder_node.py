"""engine_builder node and resolve_model, with real rclpy (TensorRT absent here: the fallback path;
the wait-for-ready path is driven by a status published from the test)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from trt_perception.modelops.engine_status import decide
from trt_perception.ros import engine_wait
from trt_perception.ros.engine_wait import STATUS_TOPIC

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"


def status(
    state: str, model: str = "/m/detector.onnx", tensorrt: bool = True, **extra: Any
) -> dict[str, Any]:
    entry = {
        "model": model,
        "precision": "fp16",
        "engine": "/e/detector.fp16.engine",
        "state": state,
        "message": "msg",
        "elapsed_s": 3.0,
        **extra,
    }
    return {
        "tensorrt": tensorrt,
        "reason": "" if tensorrt else "TensorRT is not installed",
        "engines": [entry],
    }


def test_decide_states() -> None:
    assert decide(None, "/m/detector.onnx", "fp16")[0] is None
    assert decide(status("ready"), "/m/detector.onnx", "fp16")[0] == "/e/detector.fp16.engine"
    assert decide(status("building"), "/m/detector.onnx", "fp16")[0] is None
    path, why = decide(status("failed"), "/m/detector.onnx", "fp16")
    assert path == "/m/detector.onnx" and "failed" in why
    path, why = decide(status("ready", tensorrt=False), "/m/detector.onnx", "fp16")
    assert path == "/m/detector.onnx" and "TensorRT unavailable" in why
    path, why = decide(status("ready"), "/m/segmenter.onnx", "fp16")
    assert path == "/m/segmenter.onnx" and "does not list segmenter.onnx:fp16" in why
    assert decide(status("ready"), "/m/detector.onnx", "int8")[0] == "/m/detector.onnx"
    # same file name elsewhere (share folder vs source tree) still matches
    assert decide(status("ready"), "/other/detector.onnx", "fp16")[0] == "/e/detector.fp16.engine"


def test_decide_takes_an_engine_only_for_the_batch_it_was_built_for() -> None:
    """A 4-camera pipeline needs an engine built with max_batch >= 4: a batch-1 engine would fail at
    its first batch, so it keeps the ONNX model and says how to get one."""
    path, why = decide(status("ready"), "/m/detector.onnx", "fp16", batch=4)
    assert path == "/m/detector.onnx"
    assert "detector.onnx:fp16 for batches of 4" in why and "';max_batch=4'" in why
    ready4 = status("ready", max_batch=4)
    assert decide(ready4, "/m/detector.onnx", "fp16", batch=4)[0] == "/e/detector.fp16.engine"
    assert decide(ready4, "/m/detector.onnx", "fp16", batch=2)[0] == "/e/detector.fp16.engine"
    assert "(max_batch 4)" in decide(ready4, "/m/detector.onnx", "fp16", batch=8)[1]


def wait_status(ros_node: Any) -> dict[str, Any]:
    from std_msgs.msg import String

    from trt_perception.ros.qos import latched_qos

    got: list[dict[str, Any]] = []
    ros_node.create_subscription(
        String, STATUS_TOPIC, lambda m: got.append(json.loads(m.data)), latched_qos()
    )
    assert ros_node.spin_until(lambda: bool(got), 60.0), "no latched status from engine_builder"
    return got[-1]


@pytest.mark.ros
def test_node_reports_tensorrt_absent(start_node: Any, ros_node: Any) -> None:
    from diagnostic_msgs.msg import DiagnosticArray

    node = start_node(
        "engine_builder",
        params_file=CONFIG / "engine_builder.yaml",
        params={"engines": ["models/detector.onnx", "models/x.onnx;bogus=1"]},
    )
    diags: list[Any] = []
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diags.extend(m.status), 10)
    st = wait_status(ros_node)  # subscribed after the node published: latched
    assert st["tensorrt"] is False and "TensorRT is not installed" in st["reason"]
    assert [e["state"] for e in st["engines"]] == ["unavailable"]
    assert st["engines"][0]["model"].endswith("models/detector.onnx")
    assert ros_node.spin_until(lambda: any(s.name.startswith("/engine_builder:") for s in diags), 60.0)
    mine = [s for s in diags if s.name == "/engine_builder: engine_builder"][-1]  # the summary
    assert mine.level[0] == 2  # ERROR: the bad entry
    text = " ".join([mine.message, *(kv.value for kv in mine.values)])  # problems past the first: values
    assert "unknown key 'bogus'" in text and "TensorRT is not installed" in text
    assert node.alive()


@pytest.mark.ros
def test_resolve_model_without_builder_and_without_tensorrt(ros_node: Any) -> None:
    assert engine_wait.resolve_model(ros_node, "/m/a.onnx", "fp16", False, 1.0) == "/m/a.onnx"
    assert engine_wait.resolve_model(ros_node, "/m/a.engine", "fp16", True, 1.0) == "/m/a.engine"
    start = time.monotonic()
    assert engine_wait.resolve_model(ros_node, "/m/a.onnx", "fp16", True, 120.0) == "/m/a.onnx"
    # No TensorRT here: falls back at once, not after the 120 s wait (the bound is that loose so a
    # loaded machine meets it; it only tells "at once" from "waited for the timeout").
    assert time.monotonic() - start < 30.0


@pytest.mark.ros
def test_resolve_model_waits_for_ready(ros_node: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """With TensorRT 'present', a building entry is waited on and the engine path returned once ready."""
    from std_msgs.msg import String

    from trt_perception.inference import factory
    from trt_perception.ros.qos import latched_qos

    monkeypatch.setattr(factory, "tensorrt_available", lambda: True)
    pub = ros_node.create_publisher(String, STATUS_TOPIC, latched_qos())
    pub.publish(String(data=json.dumps(status("building"))))
    timer = ros_node.create_timer(0.6, lambda: pub.publish(String(data=json.dumps(status("ready")))))
    start = time.monotonic()
    assert (
        engine_wait.resolve_model(ros_node, "/m/detector.onnx", "fp16", True, 20.0)
        == "/e/detector.fp16.engine"
    )
    assert time.monotonic() - start >= 0.5
    ros_node.destroy_timer(timer)
    # nobody lists the model: falls back to it; nothing at all: times out
    assert engine_wait.resolve_model(ros_node, "/m/other.onnx", "fp16", True, 5.0) == "/m/other.onnx"
    ros_node.destroy_publisher(pub)


@pytest.mark.ros
def test_resolve_model_times_out(ros_node: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from trt_perception.inference import factory

    monkeypatch.setattr(factory, "tensorrt_available", lambda: True)
    start = time.monotonic()
    assert engine_wait.resolve_model(ros_node, "/m/lonely.onnx", "fp16", True, 1.0) == "/m/lonely.onnx"
    # Not before its 1 s timeout (holds under any load); the upper bound, 10x the timeout, only
    # guards against a wait that ignores its timeout.
    assert 1.0 <= time.monotonic() - start < 10.0
