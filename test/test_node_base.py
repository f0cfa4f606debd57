"""PerceptionNode: declared parameters, tolerant typing, startup errors, guarded callbacks, live
parameters and the lifecycle of ManagedPerceptionNode (in-process, real rclpy), and the
no-data watchdog that points at QoS / transport when a publisher exists but no image arrives."""

from __future__ import annotations

import time
from typing import Any

import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from trt_perception.ros.diagnostics import ERROR, OK, WARN
from trt_perception.ros.node_base import (
    COMMON_PARAMETERS,
    LIFECYCLE_PARAMETERS,
    ManagedPerceptionNode,
    PerceptionNode,
)
from trt_perception.ros.params import Param, coerce

pytestmark = pytest.mark.ros


class Probe(PerceptionNode):
    PARAMETERS = (
        Param("source", "0", "A string that users often pass as a number."),
        Param("rate_hz", 0.0, "A float that users often pass as an int."),
        Param("count", 3, "An int."),
        Param("enabled", True, "A bool."),
        Param("classes", [], "An empty list: a string array."),
    )
    COMPONENT = "probe"


def _probe(ros_node: Any, overrides: dict[str, Any] | None = None, **params: Any) -> Probe:
    node = Probe(
        "probe",
        context=ros_node.context,
        parameter_overrides=[Parameter(k, value=v) for k, v in {**(overrides or {}), **params}.items()],
    )
    return node


def test_declares_parameters_with_descriptions(ros_node: Any) -> None:
    node = _probe(ros_node)
    try:
        assert set(node.params) == {p.name for p in Probe.PARAMETERS + COMMON_PARAMETERS}
        desc = node.describe_parameter("rate_hz")
        assert "float" in desc.description
        assert node.params["classes"] == [] and node.params["source"] == "0"
    finally:
        node.destroy_node()


def test_numbers_for_strings_and_ints_for_floats_are_accepted(ros_node: Any) -> None:
    node = _probe(ros_node, source=2, rate_hz=30, count=4.0)
    try:
        assert node.params["source"] == "2"
        assert node.params["rate_hz"] == 30.0 and isinstance(node.params["rate_hz"], float)
        assert node.params["count"] == 4 and isinstance(node.params["count"], int)
        assert node.diagnostics.status().level == bytes([OK])
    finally:
        node.destroy_node()


def test_wrong_type_is_a_startup_error_not_a_crash(ros_node: Any) -> None:
    node = _probe(ros_node, count="many")
    try:
        assert node.params["count"] == 3  # the default
        status = node.diagnostics.status()
        assert status.level == bytes([ERROR])
        assert "parameter 'count': expected int, got str 'many'" in status.message
    finally:
        node.destroy_node()


def test_coerce() -> None:
    assert coerce(5, "x") == "5" and coerce(5, 1.5) == 5.0 and coerce(2.0, 1) == 2
    for value, default in ((True, 1), ("a", 1.0), (2.5, 1), (1, True)):
        with pytest.raises(ValueError, match="expected"):
            coerce(value, default)


def test_guarded_callback_reports_instead_of_raising(ros_node: Any) -> None:
    node = _probe(ros_node)
    try:

        def broken(_: object) -> None:
            raise ValueError("image 0x0 is empty")

        node.guarded("image", broken)(object())
        status = node.diagnostics.status()
        assert status.level == bytes([WARN]) and "image: ValueError: image 0x0 is empty" in status.message
    finally:
        node.destroy_node()


def test_no_data_watchdog_warns_when_a_publisher_sends_nothing(ros_node: Any) -> None:
    from sensor_msgs.msg import Image

    node = _probe(ros_node, no_data_timeout=0.5)
    try:
        node.subscribe_images("watch/image", lambda msg: None)
        ros_node.create_publisher(Image, "watch/image", 1)  # exists, never publishes
        executor = SingleThreadedExecutor(context=ros_node.context)
        executor.add_node(node)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and node.diagnostics.status().level != bytes([WARN]):
                executor.spin_once(timeout_sec=0.1)
        finally:
            executor.shutdown()
        status = node.diagnostics.status()
        assert status.level == bytes([WARN])
        assert "no_data" in status.message and "fastdds_images.xml" in status.message
    finally:
        node.destroy_node()


class Managed(ManagedPerceptionNode):
    """A lifecycle node whose build fails while ``model`` is 'missing'; records what it applied."""

    PARAMETERS = (
        Param("model", "ok", "Read at configure."),
        Param("threshold", 0.5, "Live.", range=(0.0, 1.0), live=True),
        Param("names", [], "Live list.", live=True),
        *LIFECYCLE_PARAMETERS,
    )
    COMPONENT = "managed"
    applied: list[set[str]] = []

    def build(self) -> None:
        if self.params["model"] == "missing":
            raise FileNotFoundError("model file not found: missing")
        self.built = True

    def apply_parameters(self, names: set[str]) -> None:
        if "bad" in self.params["names"]:
            raise ValueError("unknown class 'bad'")
        self.applied = [*self.applied, names]


def _managed(ros_node: Any, **params: Any) -> Managed:
    return Managed(
        "managed",
        context=ros_node.context,
        parameter_overrides=[Parameter(k, value=v) for k, v in params.items()],
    )


def test_managed_node_autostarts_and_a_failed_configure_says_why(ros_node: Any) -> None:
    node = _managed(ros_node)
    try:
        assert node.lifecycle_state == "active" and node.processing and node.exit_code == 0
    finally:
        node.destroy_node()
    node = _managed(ros_node, model="missing")
    try:
        assert node.lifecycle_state == "unconfigured" and not node.processing
        status = node.diagnostics.status()
        assert status.level == bytes([ERROR]) and "configure: model file not found: missing" in status.message
        assert node.exit_code == 0  # exit_on_error is off by default
    finally:
        node.destroy_node()
    node = _managed(ros_node, model="missing", exit_on_error=True)
    try:
        assert node.exit_code == 1  # run_node's exit code once spin returns
    finally:
        node.destroy_node()


def test_live_parameters_apply_and_the_others_wait_for_a_reconfigure(ros_node: Any) -> None:
    node = _managed(ros_node)
    try:
        [result] = node.set_parameters([Parameter("threshold", value=0.9)])
        assert result.successful and node.params["threshold"] == 0.9 and node.applied == [{"threshold"}]
        [result] = node.set_parameters([Parameter("names", value=[1, 2])])  # ids for a string list
        assert result.successful and node.params["names"] == ["1", "2"]
        [result] = node.set_parameters([Parameter("names", value=["bad"])])
        assert not result.successful and "unknown class 'bad'" in result.reason
        assert node.params["names"] == ["1", "2"]  # refused: the old value stays
        [result] = node.set_parameters([Parameter("threshold", value="high")])
        assert (
            not result.successful and "parameter 'threshold': expected float, got str 'high'" in result.reason
        )
        [result] = node.set_parameters([Parameter("model", value="other")])
        assert not result.successful and "parameter 'model' is read at configure" in result.reason
        assert node.params["model"] == "ok"
        node.trigger_deactivate()
        node.trigger_cleanup()
        [result] = node.set_parameters([Parameter("model", value="missing")])
        assert result.successful  # unconfigured: the next configure reads it
        node.trigger_configure()
        assert node.lifecycle_state == "unconfigured" and "missing" in node.diagnostics.status().message
        [result] = node.set_parameters([Parameter("enabled", value=False)])
        assert result.successful and not node.processing
    finally:
        node.destroy_node()


def test_a_parameter_fixed_at_run_time_lets_the_node_configure(ros_node: Any) -> None:
    node = _managed(ros_node, threshold="high")
    try:
        assert node.lifecycle_state == "unconfigured"
        assert "parameter 'threshold': expected float, got str 'high'" in node.diagnostics.status().message
        [result] = node.set_parameters([Parameter("threshold", value=0.7)])
        assert result.successful
        node.trigger_configure()
        node.trigger_activate()
        assert node.lifecycle_state == "active" and node.diagnostics.status().level != bytes([ERROR])
    finally:
        node.destroy_node()


class Consumer(ManagedPerceptionNode):
    """A lifecycle node that counts the frames ``input_frame`` lets through."""

    PARAMETERS = LIFECYCLE_PARAMETERS
    COMPONENT = "consumer"
    processed = 0

    def start(self) -> None:
        self.subscribe_images("frames/image", self.on_image)

    def on_image(self, msg: Any) -> None:
        if self.input_frame(msg, ready=True) is not None:
            self.processed += 1


def test_frames_reach_the_input_status_once_and_unprocessed_ones_count_as_dropped(ros_node: Any) -> None:
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    node = Consumer("consumer", context=ros_node.context)
    # Best effort: the subscription stays as it started (no reliable re-subscription mid-test).
    pub = ros_node.create_publisher(Image, "frames/image", qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=ros_node.context)
    executor.add_node(node)

    def spin_until(condition: Any, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not condition():
            executor.spin_once(timeout_sec=0.05)
        return bool(condition())

    def send(encoding: str = "bgr8") -> None:
        """One frame, in lock-step: it has arrived (its age recorded) before the next goes."""
        arrived = node.latency.drops().total_arrived
        msg = Image(height=2, width=2, encoding=encoding, step=6, data=bytes(12))
        msg.header.stamp = ros_node.get_clock().now().to_msg()
        pub.publish(msg)
        assert spin_until(lambda: node.latency.drops().total_arrived > arrived)

    try:
        assert spin_until(lambda: pub.get_subscription_count() > 0)
        for _ in range(3):
            send()
        node.set_parameters([Parameter("enabled", value=False)])
        for _ in range(2):
            send()  # paused: dropped
        summary = node.diagnostics.status()
        assert summary.message.startswith("paused (enabled: false)"), summary.message
        node.set_parameters([Parameter("enabled", value=True)])
        assert not node.diagnostics.status().message.startswith("paused")
        for _ in range(2):
            send("no_such_encoding")  # cannot be converted: dropped
        send()
        drops = node.latency.drops()
        # Every delivered frame's age once (the subscription records it, the node no longer does).
        counts = (drops.total_arrived, drops.total_processed, drops.total_dropped)
        assert node.processed == 4 and counts == (8, 4, 4)
        assert spin_until(lambda: "/frames/image.reliability" in _values(node, "input"))
        values = _values(node, "input")
        assert values["/frames/image.reliability"] == "BEST_EFFORT" and values["dropped.total"] == "4"
        assert "/frames/image.reliability" not in _values(node, "consumer")  # on the input status only
    finally:
        executor.shutdown()
        node.destroy_node()


def _values(node: PerceptionNode, task: str) -> dict[str, str]:
    [status] = [s for s in node.diagnostics.statuses() if s.name == f"/consumer: {task}"]
    return {kv.key: kv.value for kv in status.values}
