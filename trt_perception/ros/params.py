"""Parameter declarations: every node lists its parameters once, with a description and default.

Each node module exposes ``PARAMETERS`` (a tuple of ``Param``); the node declares them from there,
``config/<node>.yaml`` holds the same defaults, and the launch-file test checks the YAML against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    read_only: bool = False


def declare_all(node: Node, params: tuple[Param, ...] | list[Param]) -> dict[str, Any]:
    """Declare ``params`` on ``node`` and return their current values by name.

    An empty list default is declared as a string array (ROS needs a typed array).
    """
    values: dict[str, Any] = {}
    for p in params:
        desc = ParameterDescriptor(description=p.description, read_only=p.read_only)
        if isinstance(p.default, list) and not p.default:
            from rclpy.parameter import Parameter

            param = node.declare_parameter(p.name, Parameter.Type.STRING_ARRAY, desc)
            values[p.name] = list(param.value) if param.type_ != Parameter.Type.NOT_SET else []
            continue
        node.declare_parameter(p.name, p.default, desc)
        value = node.get_parameter(p.name).value
        values[p.name] = list(value) if isinstance(value, (list, tuple)) else value
    return values


def defaults(params: tuple[Param, ...] | list[Param]) -> dict[str, Any]:
    return {p.name: p.default for p in params}
