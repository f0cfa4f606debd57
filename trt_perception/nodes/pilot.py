"""``pilot`` node: camera ``sensor_msgs/Image`` -> ``geometry_msgs/Twist`` on ``cmd_vel`` (PilotNet brain).

Thin: parameters -> ``stages.pilot.Pilot``. Each frame is cropped, resized to 66x200, run through
the engine and the un-normalised (v, w) published as ``linear.x`` / ``angular.z``. Only the newest
frame matters to a driving brain, so the subscription keeps a depth of 1. ``/diagnostics`` carries the
latency stages, the brain iteration frequency (real and, under ``use_sim_time``, simulated), the
per-iteration inference times since the last message (``inference.samples_ms``, read by
``behavior_evaluator``) and the received-frame counter.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from typing import Any

from geometry_msgs.msg import Twist
from sensor_msgs.msg import Image

from ..metrics.behavior_run import FRAMES_KEY, INFERENCE_SAMPLES_KEY, format_samples
from ..ros.files import ENGINE_PARAMETERS, params_model_file
from ..ros.node_base import LIFECYCLE_PARAMETERS, ManagedPerceptionNode, run_node
from ..ros.params import Param
from ..ros.qos import reliable_qos
from ..stages.pilot import Pilot
from ._stages import PILOT, close_stage

PARAMETERS: tuple[Param, ...] = (
    *PILOT.params(),
    *ENGINE_PARAMETERS,
    Param("image_topic", "camera/image_raw", "Input camera topic (reliability follows its publishers)."),
    Param("cmd_vel_topic", "cmd_vel", "Output geometry_msgs/Twist topic."),
    Param(
        "stop_on_shutdown",
        True,
        "Publish a zero Twist when the node stops (shutdown, deactivate, enabled false).",
    ),
    *LIFECYCLE_PARAMETERS,
)


SAMPLES_KEPT = 1000


class PilotNode(ManagedPerceptionNode):
    """Lifecycle: configure loads the brain, activate subscribes to the camera; deactivate (and
    ``enabled`` false) send a zero Twist with ``stop_on_shutdown``, so a paused brain stops the car."""

    PARAMETERS = PARAMETERS
    COMPONENT = "pilot"
    pilot: Pilot | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("pilot", **kwargs)

    def build(self) -> None:
        p = self.params
        model = params_model_file(self, p)
        self.pilot = Pilot(PILOT.config(p, model=model), self.latency)
        self.pilot.warmup()
        self.stages_ready(self.pilot)
        self.diagnostics.set_value("model", model)
        self.diagnostics.set_value("backend", self.pilot.engine.backend)
        self.get_logger().info(f"pilot ready: {model} ({self.pilot.engine.backend})")
        self.pub = self.publisher(Twist, str(p["cmd_vel_topic"]), reliable_qos(10))
        self._data_lock = threading.Lock()
        # the newest inference times, re-sent every period with the index of the first one, so the
        # evaluator neither loses samples nor counts them twice when diagnostics messages drop or repeat
        self._samples: deque[float] = deque(maxlen=SAMPLES_KEPT)
        self._frames = 0
        self._iterations = 0
        self._window_iterations = 0

    def start(self) -> None:
        self._window_start = (time.monotonic(), self.get_clock().now().nanoseconds)
        self.subscribe_images(str(self.params["image_topic"]), self.on_image, depth=1)
        period = float(self.params["diagnostics_period"])
        if period > 0:
            self.track(self.create_timer(period, self._update_rates))

    def stop(self) -> None:
        self._halt()
        super().stop()

    def release(self) -> None:
        close_stage(self.pilot)
        self.pilot = None

    def apply_parameters(self, names: set[str]) -> None:
        if self.pilot is not None and names & PILOT.names(live=True):
            cfg = PILOT.config(self.params, model=self.pilot.config.model)
            self.pilot = Pilot(cfg, self.latency, self.pilot.engine)  # the same engine: no reload
        if "enabled" in names and not self.params["enabled"]:
            self._halt()

    def _halt(self) -> None:
        """A zero Twist (with ``stop_on_shutdown``): the car must not drive on the last command."""
        if self.params["stop_on_shutdown"] and self.pilot is not None:
            with contextlib.suppress(Exception):  # the context may be going down with the process
                self.pub.publish(Twist())

    def on_image(self, msg: Image) -> None:
        if self.processing:
            with self._data_lock:
                self._frames += 1
        frame = self.input_frame(msg, self.pilot is not None)
        if frame is None or self.pilot is None:
            return
        bgr, stamp = frame
        try:
            cmd = self.pilot(bgr, stamp)
        except ValueError as exc:  # e.g. a frame too small for the crop rows
            self.warn_input("input", str(exc))
            return
        out = Twist()
        out.linear.x = cmd.v
        out.angular.z = cmd.w
        self.pub.publish(out)
        with self._data_lock:
            self._iterations += 1
            self._window_iterations += 1
            self._samples.append(self.pilot.last_inference_ms)

    def _update_rates(self) -> None:
        """Brain iteration frequency over the last period, real and ROS (simulated) time."""
        now_wall, now_ros = time.monotonic(), self.get_clock().now().nanoseconds
        with self._data_lock:
            n, self._window_iterations = self._window_iterations, 0
            samples = list(self._samples)
            frames, total = self._frames, self._iterations
        wall0, ros0 = self._window_start
        self._window_start = (now_wall, now_ros)
        d = self.diagnostics
        d.set_value("brain_iterations", total)
        d.set_value("brain_iteration_frequency_real_hz", n / (now_wall - wall0) if now_wall > wall0 else 0.0)
        if now_ros > ros0:
            d.set_value("brain_iteration_frequency_ros_hz", n / ((now_ros - ros0) / 1e9))
        d.set_value(INFERENCE_SAMPLES_KEY, format_samples(total - len(samples), samples))
        d.set_value(FRAMES_KEY, frames)


def main(args: list[str] | None = None) -> int:
    return run_node(PilotNode, args)
