"""Tensor specs and the engine error: the vocabulary ``engine`` and ``model_info`` both speak.

Kept below both so that ``model_info`` (which reads a model's tensors) and ``engine`` (which resolves
an engine's ``ModelInfo``) import it instead of each other. Everyone else imports these names from
``engine``, the interface they belong to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Dim = int | str | None


class EngineError(RuntimeError):
    """A model or engine that cannot be loaded or run; the message names file, tensor and values."""


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (``None``/str for dynamic dimensions) and numpy dtype of one model tensor."""

    name: str
    shape: tuple[Dim, ...]
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float32))

    @property
    def is_dynamic(self) -> bool:
        return any(not isinstance(d, int) or d < 0 for d in self.shape)

    def matches(self, shape: tuple[int, ...]) -> bool:
        """True when a concrete ``shape`` fits this spec (same rank, equal on every static dim)."""
        if len(shape) != len(self.shape):
            return False
        return all(not isinstance(d, int) or d < 0 or d == s for d, s in zip(self.shape, shape))

    def __str__(self) -> str:
        dims = ",".join("?" if not isinstance(d, int) or d < 0 else str(d) for d in self.shape)
        return f"{self.name}[{dims}]:{np.dtype(self.dtype).name}"
