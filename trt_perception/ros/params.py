"""Parameter declarations: every node lists its parameters once, with a description and default.

Each node module exposes ``PARAMETERS`` (a tuple of ``Param``): its stages' parameters derived from
their config dataclasses (``ros/stage_params.py``) plus its own (topics, frame_id...). The node
declares them from there; ``tools/gen_param_table.py`` writes ``config/<node>.yaml`` and the README
tables from the same tuple.
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
    #: Inclusive (low, high) bounds of a number; a value outside keeps the default and is reported.
    range: tuple[float, float] | None = None


def declare_all(
    node: Node, params: tuple[Param, ...] | list[Param], errors: list[str] | None = None
) -> dict[str, Any]:
    """Declare ``params`` on ``node`` and return their current values by name.

    Scalars are declared with dynamic typing and coerced to the default's type, so ``source:=0`` (an
    int on the command line or from a launch argument) still gives the string "0", and ``rate:=30`` the
    float 30.0. A value that cannot be coerced keeps the default and its message is appended to
    ``errors`` (the node reports it), instead of an exception that kills the node. An empty list default
    is declared as a string array (ROS needs a typed array).
    """
    from rclpy.parameter import Parameter

    values: dict[str, Any] = {}
    for p in params:
        if isinstance(p.default, list) and not p.default:
            desc = ParameterDescriptor(description=p.description, read_only=p.read_only)
            param = node.declare_parameter(p.name, Parameter.Type.STRING_ARRAY, desc)
            values[p.name] = list(param.value) if param.type_ != Parameter.Type.NOT_SET else []
            continue
        scalar = isinstance(p.default, (bool, int, float, str))
        desc = ParameterDescriptor(
            description=p.description,
            read_only=p.read_only,
            dynamic_typing=scalar,
            # Shown by `ros2 param describe`; enforced below (a bad value keeps the default, reported).
            additional_constraints=f"range [{p.range[0]}, {p.range[1]}]" if p.range else "",
        )
        node.declare_parameter(p.name, p.default, desc)
        value = node.get_parameter(p.name).value
        if scalar:
            try:
                value = check_range(coerce(value, p.default), p.range)
            except ValueError as exc:
                if errors is None:
                    raise
                errors.append(f"parameter '{p.name}': {exc}; using the default {p.default!r}")
                value = p.default
        values[p.name] = list(value) if isinstance(value, (list, tuple)) else value
    return values


def coerce(value: Any, default: Any) -> Any:
    """``value`` as the type of ``default`` (str, int, float, bool); ValueError when it does not fit."""
    kind = type(default)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"expected {kind.__name__}, got {type(value).__name__} {value!r}")


def check_range(value: Any, bounds: tuple[float, float] | None) -> Any:
    """``value`` when inside the inclusive ``bounds`` (or there are none); ValueError otherwise."""
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{value!r} is outside [{bounds[0]}, {bounds[1]}]")
    return value


def defaults(params: tuple[Param, ...] | list[Param]) -> dict[str, Any]:
    return {p.name: p.default for p in params}
