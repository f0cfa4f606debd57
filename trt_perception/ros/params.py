"""Parameter declarations: every node lists its parameters once, with a description and default.

Each node module exposes ``PARAMETERS`` (a tuple of ``Param``): its stages' parameters derived from
their config dataclasses (``ros/stage_params.py``) plus its own (topics, frame_id...). The node
declares them from there; ``tools/gen_param_table.py`` writes ``config/<node>.yaml`` and the README
tables from the same tuple. ``Param.live`` marks a parameter that may change while the node runs
(``ros/live_params.py``); every other one is read when the node configures.
"""

from __future__ import annotations

import array
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
    #: Inclusive (low, high) bounds of a number; a value outside is an error naming the bounds.
    range: tuple[float, float] | None = None
    #: Applies from the next frame when set at run time; False: read at configure (a reload).
    live: bool = False


def declare_all(
    node: Node, params: tuple[Param, ...] | list[Param], errors: list[str] | None = None
) -> dict[str, Any]:
    """Declare ``params`` on ``node`` and return their current values by name.

    Every parameter is declared with dynamic typing and converted to its default's type (``convert``),
    so ``source:=0`` (an int on the command line or from a launch argument) still gives the string "0",
    ``rate:=30`` the float 30.0 and ``classes:=[1]`` (an int array) the string list ["1"]. A value that
    cannot be converted is appended to ``errors`` naming the parameter, the expected and the given type
    (a lifecycle node then fails to configure) and the default stands in; without ``errors`` it raises.
    """
    values: dict[str, Any] = {}
    for p in params:
        desc = ParameterDescriptor(
            description=p.description,
            read_only=p.read_only,
            # Typed by ``convert`` instead of rclpy: an int array for a string array is no exception.
            dynamic_typing=True,
            # Shown by `ros2 param describe`; enforced by ``convert``.
            additional_constraints=f"range [{p.range[0]}, {p.range[1]}]" if p.range else "",
        )
        # An empty list has no ROS type (rclpy would call it a byte array): declared unset, read as [].
        default = None if isinstance(p.default, list) and not p.default else p.default
        value = node.declare_parameter(p.name, default, desc).value
        try:
            values[p.name] = convert(value, p)
        except ValueError as exc:
            if errors is None:
                raise
            errors.append(f"parameter '{p.name}': {exc}")
            values[p.name] = p.default
    return values


def convert(value: Any, p: Param) -> Any:
    """``value`` (a ROS parameter value) as ``p``'s type and inside its range; ValueError naming the
    expected and the given type or the bounds otherwise. Unset (None) is the default."""
    if value is None:
        return list(p.default) if isinstance(p.default, list) else p.default
    if isinstance(p.default, list):
        items = value.tolist() if isinstance(value, array.array) else value
        # (An empty list set from Python arrives as an empty byte array: that is [] too.)
        if not isinstance(items, (list, tuple)) or any(isinstance(v, bytes) for v in items):
            raise ValueError(f"expected a list, got {_kind(value)} {value!r}")
        # Lists are lists of text (labels, file entries, 'B,G,R'): ids and numbers as their text.
        return [str(v).lower() if isinstance(v, bool) else str(v) for v in items]
    return check_range(coerce(value, p.default), p.range)


def _kind(value: Any) -> str:
    """The given type as a user would name it: ``int``, ``str array``..."""
    if isinstance(value, (list, tuple, array.array)):
        items = list(value)
        return f"{type(items[0]).__name__} array" if items else "empty array"
    return type(value).__name__


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
    raise ValueError(f"expected {kind.__name__}, got {_kind(value)} {value!r}")


def check_range(value: Any, bounds: tuple[float, float] | None) -> Any:
    """``value`` when inside the inclusive ``bounds`` (or there are none); ValueError otherwise."""
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{value!r} is outside [{bounds[0]}, {bounds[1]}]")
    return value


def defaults(params: tuple[Param, ...] | list[Param]) -> dict[str, Any]:
    return {p.name: p.default for p in params}
