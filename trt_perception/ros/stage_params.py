"""Node parameters derived from stage config dataclasses: the dataclass is their only declaration.

``StageParams(DetectorConfig, {"model": "models/detector.onnx"})`` turns every field of the config
into a ``Param`` (name, default, description and range from ``stages/fields.py`` metadata), under a
prefix for nodes that run several stages (``detector.``, ``plate_reader.``...), and builds the config
back from the declared values. ``defaults`` holds the node-side defaults a field lacks or overrides
(a required ``model``, a deployment input size); they are given in the field's own type. ``live``
names the fields that may change while the node runs (thresholds, filters: ``Param.live``); the
others are read at configure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..stages.fields import FROM_PARAM, HELP, PARAM, PATH, RANGE, TO_PARAM, field_default
from .files import resolve_file
from .params import Param

C = TypeVar("C")


@dataclass(frozen=True)
class StageParams(Generic[C]):
    cls: type[C]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    live: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        names = {f.name for f in dataclasses.fields(self.cls)}  # type: ignore[arg-type]
        unknown = sorted(set(self.live) - names)
        if unknown:  # a typo would leave a parameter read once: fail at import instead
            raise TypeError(f"{self.cls.__name__} has no field(s) {unknown} (StageParams.live)")

    def param_name(self, f: dataclasses.Field[Any], prefix: str = "") -> str:
        return prefix + (f.metadata.get(PARAM) or f.name)

    def params(self, prefix: str = "") -> tuple[Param, ...]:
        """One ``Param`` per config field, named ``prefix`` + the field's parameter name."""
        return tuple(self._param(f, prefix) for f in dataclasses.fields(self.cls))  # type: ignore[arg-type]

    def _param(self, f: dataclasses.Field[Any], prefix: str) -> Param:
        value = self.defaults.get(f.name, field_default(f))
        if value is dataclasses.MISSING:
            raise TypeError(f"{self.cls.__name__}.{f.name} has no default: give one in StageParams.defaults")
        to_param = f.metadata.get(TO_PARAM)
        default = to_param(value) if to_param else value
        return Param(
            self.param_name(f, prefix),
            default,
            f.metadata[HELP],
            range=f.metadata.get(RANGE),
            live=f.name in self.live,
        )

    def names(self, prefix: str = "", live: bool | None = None) -> frozenset[str]:
        """The parameter names (``live``: only the live ones, or only the others)."""
        return frozenset(p.name for p in self.params(prefix) if live is None or p.live == live)

    def config(self, values: Mapping[str, Any], prefix: str = "", **given: Any) -> C:
        """The config from the node's parameter ``values``; ``given`` fields (e.g. the resolved
        ``model``) replace the parameter's value."""
        kwargs = {
            f.name: given[f.name] if f.name in given else self._value(f, values[self.param_name(f, prefix)])
            for f in dataclasses.fields(self.cls)  # type: ignore[arg-type]
        }
        return self.cls(**kwargs)

    @staticmethod
    def _value(f: dataclasses.Field[Any], value: Any) -> Any:
        from_param = f.metadata.get(FROM_PARAM)
        if from_param is not None:
            return from_param(value)
        if isinstance(value, (list, tuple)):  # string arrays: empty entries are no entries
            return [str(v) for v in value if str(v)]
        return resolve_file(str(value)) if f.metadata.get(PATH) else value
