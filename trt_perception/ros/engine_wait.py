"""Inference nodes <- engine builder: which file to load, waiting for the build when asked to.

The ``engine_builder`` node publishes a latched (transient-local) ``std_msgs/String`` on
``engine_builder/status`` holding JSON::

    {"tensorrt": true, "reason": "", "engines": [
        {"model": "/abs/models/detector.onnx", "precision": "fp16", "max_batch": 1, "engine": "/abs/engines/detector.fp16.engine",
         "state": "pending|building|ready|failed|unavailable", "message": "...", "elapsed_s": 12.3}]}

``resolve_model`` returns the engine once its entry is ``ready`` (``modelops.engine_status.decide``). It falls back to the ONNX (run
with ONNX Runtime) with one WARN when TensorRT is absent here or in the builder, the build failed,
the builder does not list the model, or nothing arrives within ``timeout_s``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import String

from ..inference import factory
from ..modelops.engine_status import decide
from .qos import latched_qos

STATUS_TOPIC = "engine_builder/status"
PLAN_SUFFIXES = (".engine", ".plan", ".trt")


def resolve_model(
    node: Node, model: str, precision: str, use_builder: bool, timeout_s: float, batch: int = 1
) -> str:
    """The path an inference node should load (see module docstring); logs why. ``batch``: the frames
    per engine call the stage needs (the builder's entry must have that ``max_batch``)."""
    log = node.get_logger()
    if not use_builder or Path(model).suffix in PLAN_SUFFIXES:
        return model
    if not factory.tensorrt_available():
        log.warning(
            f"{factory.tensorrt_unavailable_reason()}: running {model} with ONNX Runtime instead of an engine"
        )
        return model
    latest: dict[str, Any] = {}

    def on_status(msg: String) -> None:
        try:
            latest["status"] = json.loads(msg.data)
        except ValueError:
            log.warning(f"unparseable {STATUS_TOPIC} message ignored", throttle_duration_sec=10.0)

    sub = node.create_subscription(String, STATUS_TOPIC, on_status, latched_qos())
    # Called from a node's constructor (no executor yet): spin it on a private one meanwhile.
    executor = node.executor
    own = executor is None
    if own:
        executor = SingleThreadedExecutor(context=node.context)
        executor.add_node(node)
    start = time.monotonic()
    last_log = 0.0
    try:
        while node.context.ok():
            executor.spin_once(timeout_sec=0.2)
            path, why = decide(latest.get("status"), model, precision, batch)
            waited = time.monotonic() - start
            if path is not None:
                if path == model:
                    log.warning(f"{why}: running {model} with ONNX Runtime")
                else:
                    log.info(f"engine ready after {waited:.1f} s: {path}")
                return path
            if waited > timeout_s:
                log.warning(
                    f"no engine for {Path(model).name}:{precision} after {timeout_s:.0f} s ({why}); "
                    f"is engine_builder running with this model in its 'engines'? Running {model} with ONNX Runtime"
                )
                return model
            if waited - last_log > 10.0:
                last_log = waited
                log.info(f"waiting for engine {Path(model).name}:{precision} ({why})")
    finally:
        node.destroy_subscription(sub)
        if own:
            executor.remove_node(node)
            executor.shutdown()
    return model
