"""Stage config fields that document themselves: the single declaration of a stage's settings.

A stage config dataclass declares each field with ``setting(...)`` (or ``field(metadata=about(...))``): its default, a description, and
optionally a range, the node parameter name (when it differs from the field's) and a text form for
values ROS parameters cannot hold (tuples, None). The nodes derive their parameters from these fields
(``ros/stage_params.py``), so adding a field makes it a node parameter, a ``config/*.yaml`` entry and a
README row. ROS-free.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

HELP, RANGE, PARAM, TO_PARAM, FROM_PARAM, PATH = "help", "range", "param", "to_param", "from_param", "path"


def about(
    help: str,
    *,
    range: tuple[float, float] | None = None,
    param: str = "",
    to_param: Callable[[Any], Any] | None = None,
    from_param: Callable[[Any], Any] | None = None,
    path: bool = False,
) -> dict[str, Any]:
    """A field's metadata: its description (``help``) and, where needed, ``range`` (inclusive bounds
    of the node parameter), ``param`` (the node parameter's name when it is not the field's),
    ``to_param``/``from_param`` (the parameter form of a value that is not a str, int, float, bool or
    list of str) and ``path`` (a file the node resolves against the package share)."""
    return {HELP: help, RANGE: range, PARAM: param, TO_PARAM: to_param, FROM_PARAM: from_param, PATH: path}


def setting(default: Any = dataclasses.MISSING, **metadata: Any) -> Any:
    """A field with an immutable (or no) default and ``about(**metadata)``; a list default needs
    ``dataclasses.field(default_factory=list, metadata=about(...))`` instead."""
    return dataclasses.field(default=default, metadata=about(**metadata))


def field_default(f: dataclasses.Field[Any]) -> Any:
    """The field's default value (a fresh one for ``default_factory``); MISSING when it has none."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default
