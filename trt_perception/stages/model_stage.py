"""What every model stage sets up the same way: its config, latency recorder, stage names and engine."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from ..inference.engine import Engine
from ..inference.factory import open_engine
from ..metrics.latency import INFERENCE, POSTPROCESS, PREPROCESS, LatencyRecorder


class _Config(Protocol):
    backend: str


C = TypeVar("C", bound=_Config)


class ModelStage(Generic[C]):
    """``cfg``, ``latency`` (a new recorder when None), ``prefix`` and ``_names`` (pre-process,
    inference and post-process latency names under it) and ``engine`` (given, or opened from ``model`` with
    ``cfg.backend``)."""

    def __init__(
        self, cfg: C, latency: LatencyRecorder | None, engine: Engine | None, prefix: str, model: str
    ) -> None:
        self.cfg = cfg
        self.latency = latency or LatencyRecorder()
        self.prefix = prefix
        self._names = (prefix + PREPROCESS, prefix + INFERENCE, prefix + POSTPROCESS)
        self.engine = engine or open_engine(model, cfg.backend)
