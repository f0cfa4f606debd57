"""The one inference interface every stage uses; backends differ only inside their own module.

Modelled on Polygraphy's runners: tensors are discovered by name with their shapes (``None`` or a
string for a dynamic dimension) and dtypes, ``infer`` maps names to numpy arrays, and the time of the
last call is kept for the latency reports.

``infer`` is a template method: it checks the feeds against the input specs, then times the
backend's ``_infer``. **Inference latency** (``last_latency_ms``, the ``inference`` entry of every
stage's latency report) is, for every backend, the wall time of ``_infer``: host inputs handed to the
runtime, the network run, and -- unless ``outputs_on_device=True`` -- the outputs back in host memory
and ready to read. With ``outputs_on_device=True`` (backends that have device memory) it is the time
to queue the run; the caller's next work on the engine's stream sees the results.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np

from .model_info import ModelInfo, resolve
from .tensors import EngineError, TensorSpec


class Shaped(Protocol):
    """Anything with a shape and dtype: a numpy array or a backend's device tensor."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> Any: ...


class Encoded(NamedTuple):
    """A stage's network input for one frame (``stage.encode``): ``feeds`` (the stage's reused
    buffers: copy to keep) and where the frame went in it (a detector's letterbox; else None)."""

    feeds: dict[str, Any]
    placement: Any = None


def describe(specs: list[TensorSpec]) -> str:
    """``a[1,3,?,?]:float32, b[...]`` for error messages."""
    return ", ".join(str(s) for s in specs)


class Engine(abc.ABC):
    """A loaded model: named input/output specs and ``infer`` on numpy arrays.

    Implementations preallocate their buffers per input shape so the hot path allocates nothing new
    once a shape has been seen (the returned arrays may be reused by the next call: copy to keep).
    """

    #: Short backend name used in reports and diagnostics (``onnxruntime``, ``tensorrt``).
    backend: str = "abstract"

    #: True when ``infer(..., outputs_on_device=True)`` can leave the outputs in device memory.
    device_outputs: bool = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.last_latency_ms: float = float("nan")
        self._info: ModelInfo | None = None

    @property
    @abc.abstractmethod
    def inputs(self) -> list[TensorSpec]: ...

    @property
    @abc.abstractmethod
    def outputs(self) -> list[TensorSpec]: ...

    @property
    def metadata(self) -> dict[str, str]:
        """Free-form model metadata (e.g. an OCR model's character list); empty by default."""
        return {}

    @property
    def info(self) -> ModelInfo:
        """What the model is, from its metadata and sidecars (no parameters; stages add theirs)."""
        if self._info is None:
            self._info = resolve(self.metadata, self.inputs, self.outputs, self.path)
        return self._info

    def infer(self, feeds: Mapping[str, Shaped], outputs_on_device: bool = False) -> dict[str, Any]:
        """Run once and return the outputs by name; ``last_latency_ms`` is ``_infer``'s wall time
        (module docstring). ``outputs_on_device=True`` leaves them in device memory (backends with
        ``device_outputs``); the returned buffers are reused by the next call: copy to keep."""
        self.check_feeds(feeds)
        if outputs_on_device and not self.device_outputs:
            raise EngineError(
                f"{self.path.name}: the {self.backend} backend has no device outputs; "
                "use outputs_on_device=False (or the tensorrt backend)"
            )
        start = time.perf_counter()
        out = self._infer(feeds, outputs_on_device)
        self.last_latency_ms = (time.perf_counter() - start) * 1e3
        return out

    @abc.abstractmethod
    def _infer(self, feeds: Mapping[str, Any], outputs_on_device: bool) -> dict[str, Any]:
        """The backend's run on checked feeds; nothing else is timed in it."""

    def input(self, name: str | None = None) -> TensorSpec:
        """The spec named ``name``, or the only input when ``name`` is None."""
        return _pick(self.inputs, name, self.path, "input")

    def output(self, name: str | None = None) -> TensorSpec:
        return _pick(self.outputs, name, self.path, "output")

    def batch_limits(self, name: str | None = None) -> tuple[int, int | None]:
        """(min, max) batch size of an input: a static batch is (n, n), a dynamic one (1, None)
        unless the backend knows better (TensorRT: its optimization profile)."""
        spec = self.input(name)
        first = spec.shape[0] if spec.shape else 1
        if isinstance(first, int) and first > 0:
            return first, first
        return 1, None

    def check_feeds(self, feeds: Mapping[str, Shaped]) -> None:
        """Raise EngineError naming the tensor and the expected vs actual shape or dtype."""
        expected = {s.name: s for s in self.inputs}
        missing = sorted(set(expected) - set(feeds))
        unknown = sorted(set(feeds) - set(expected))
        if missing or unknown:
            raise EngineError(
                f"{self.path.name}: inputs expected {describe(self.inputs)}; missing {missing}, unknown {unknown}"
            )
        for name, arr in feeds.items():
            spec = expected[name]
            if not spec.matches(tuple(arr.shape)):
                raise EngineError(
                    f"{self.path.name}: input '{name}' expects shape {spec} but got {tuple(arr.shape)}"
                )
            if np.dtype(arr.dtype) != np.dtype(spec.dtype):
                raise EngineError(
                    f"{self.path.name}: input '{name}' expects dtype {np.dtype(spec.dtype).name} "
                    f"but got {np.dtype(arr.dtype).name}"
                )

    def warmup(self, iterations: int = 3, shapes: Mapping[str, tuple[int, ...]] | None = None) -> None:
        """Run ``iterations`` inferences on zeros so first-frame latency is not the lazy init's."""
        feeds = {}
        for spec in self.inputs:
            shape = (shapes or {}).get(spec.name) or tuple(
                d if isinstance(d, int) and d > 0 else 1 for d in spec.shape
            )
            feeds[spec.name] = np.zeros(shape, dtype=spec.dtype)
        for _ in range(iterations):
            self.infer(feeds)

    def close(self) -> None:  # noqa: B027 - optional hook; most backends free on garbage collection
        """Release device memory and sessions early."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LoadedSpecs:
    """``inputs``/``outputs``/``metadata`` of a backend that reads them once when it loads the model
    (into ``_inputs``, ``_outputs``, ``_metadata``). Listed before ``Engine`` in the bases."""

    _inputs: list[TensorSpec]
    _outputs: list[TensorSpec]
    _metadata: dict[str, str]

    @property
    def inputs(self) -> list[TensorSpec]:
        return self._inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self._outputs

    @property
    def metadata(self) -> dict[str, str]:
        return self._metadata


def _pick(specs: list[TensorSpec], name: str | None, path: Path, kind: str) -> TensorSpec:
    if name is None:
        if len(specs) != 1:
            raise EngineError(f"{path.name}: has {len(specs)} {kind}s ({describe(specs)}); name one")
        return specs[0]
    for s in specs:
        if s.name == name:
            return s
    raise EngineError(f"{path.name}: no {kind} named '{name}'; it has {describe(specs)}")
