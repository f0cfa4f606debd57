"""Clients a user's tools would use on a running node: ``ros2 param set`` (SetParameters) and
``ros2 lifecycle get/set`` (GetState/ChangeState), over real rclpy service calls."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from rclpy.parameter import Parameter


def _call(node: Any, client: Any, request: Any, timeout: float) -> Any:
    assert node.spin_until(client.service_is_ready, timeout), f"{client.srv_name} not available"
    future = client.call_async(request)
    assert node.spin_until(future.done, timeout), f"{client.srv_name} did not answer"
    return future.result()


def set_params(node: Any, target: str, timeout: float = 20.0, **values: Any) -> Any:
    """``SetParameters`` on ``/<target>``: the first result (successful, reason)."""
    from rcl_interfaces.srv import SetParameters

    client = node.create_client(SetParameters, f"/{target}/set_parameters")
    try:
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        )
        results = _call(node, client, request, timeout).results
    finally:
        node.destroy_client(client)
    assert len(results) == len(values)
    failed = [r for r in results if not r.successful]
    return failed[0] if failed else results[0]


def lifecycle_state(node: Any, target: str, timeout: float = 20.0) -> str:
    from lifecycle_msgs.srv import GetState

    client = node.create_client(GetState, f"/{target}/get_state")
    try:
        return str(_call(node, client, GetState.Request(), timeout).current_state.label)
    finally:
        node.destroy_client(client)


def change_state(node: Any, target: str, transition: str, timeout: float = 60.0) -> bool:
    """A lifecycle transition by label (configure, activate, deactivate, cleanup, shutdown)."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    client = node.create_client(ChangeState, f"/{target}/change_state")
    try:
        request = ChangeState.Request(transition=Transition(label=transition))
        return bool(_call(node, client, request, timeout).success)
    finally:
        node.destroy_client(client)


def own_domain(offset: int) -> str:
    """A ROS domain (10-99) for one test module's processes, apart from the run's shared one (pid + 0):
    participants left by other tests cannot feed or answer them."""
    return str(10 + (os.getpid() + offset) % 90)


@contextlib.contextmanager
def probe_node(domain: str | None = None) -> Iterator[Any]:
    """A test node (in ``domain``, else the run's ``ROS_DOMAIN_ID``) with ``spin_until(condition,
    timeout)``; conftest's ``ros_node`` fixture is one."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context, **({"domain_id": int(domain)} if domain is not None else {}))
    node = rclpy.create_node(f"test_probe_{os.getpid()}", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)

    def spin_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            if condition():
                return True
        return condition()

    node.spin_until = spin_until
    try:
        yield node
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
