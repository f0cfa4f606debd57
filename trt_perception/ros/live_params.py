"""Parameters set while a node runs: applied from the next frame, or refused with the reason.

rclpy accepts any ``SetParameters`` request unless an on-set callback objects, so a value the node read
once at startup would be "accepted and ignored". ``check_changes`` is that callback's judgement for
the node's declared ``Param`` s: a value of the wrong type or out of range is refused naming the
parameter, the expected and the given type (or the bounds); a parameter that is not ``live`` (the
model, backend, decoder, input size, topics: whatever is set up at configure) is refused while the node
is configured, with what to do instead. Parameters the node does not declare itself (``use_sim_time``,
``qos_overrides.*``, which rclpy keeps read-only) are left to rclpy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rclpy.parameter import Parameter

from .params import Param, convert

#: ``why_locked(name)``: why a non-live parameter cannot change now; empty when it can.
WhyLocked = Callable[[str], str]


def check_changes(
    declared: Mapping[str, Param], changes: Sequence[Parameter[Any]], why_locked: WhyLocked
) -> tuple[dict[str, Any], str]:
    """``(converted values by name, "")`` when every change may apply, else ``({}, reason)``."""
    values: dict[str, Any] = {}
    for change in changes:
        p = declared.get(change.name)
        if p is None:
            continue
        try:
            value = convert(change.value, p)
        except ValueError as exc:
            return {}, f"parameter '{change.name}': {exc}"
        reason = "" if p.live else why_locked(change.name)
        if reason:
            return {}, f"parameter '{change.name}' {reason}"
        values[change.name] = value
    return values, ""
