"""OpenVINO backend (CPU): ONNX read directly, or an OpenVINO IR (``.xml`` + ``.bin``) from the NNCF recipes.

The CPU plugin runs a static shape fastest, so the model is reshaped to each concrete input-shape
signature it meets and compiled once for it (at most ``max_cached_shapes`` kept, oldest dropped).
Each compiled shape keeps one preallocated infer request: its input tensors are filled in place
and its output tensors are returned as numpy views -- the same buffers for every call of that shape
(copy to keep). Latency is ``Engine.infer``'s: inputs copied in, the run, outputs readable on the host.

``precision`` is OpenVINO's ``INFERENCE_PRECISION_HINT``: ``f32`` by default so an FP32 model is
computed in FP32 (on a CPU with bf16/fp16 units OpenVINO would otherwise lower it); INT8 models run
INT8 whatever the hint (their FakeQuantize / Q-DQ nodes decide).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .engine import Engine, EngineError, LoadedSpecs, TensorSpec
from .model_info import onnx_metadata
from .tensors import Dim

#: Where an IR written by ``modelops.nncf_recipes`` keeps the source ONNX's ``metadata_props``.
IR_METADATA_KEY = "trt_perception_metadata"
IR_SUFFIXES = (".xml",)

Signature = tuple[tuple[int, ...], ...]


class OpenVinoEngine(LoadedSpecs, Engine):
    backend = "openvino"

    def __init__(
        self,
        path: str | Path,
        device: str = "CPU",
        threads: int = 0,
        precision: str = "f32",
        max_cached_shapes: int = 8,
    ) -> None:
        super().__init__(path)
        import openvino as ov  # lazy: ~0.8 s to import; only OpenVINO runs need it

        if not self.path.is_file():
            raise EngineError(f"model file not found: {self.path}")
        self._core = ov.Core()
        try:
            self._model = self._core.read_model(str(self.path))
        except Exception as exc:  # OpenVINO raises a generic RuntimeError for unreadable files
            raise EngineError(f"cannot load model {self.path} with OpenVINO: {exc}") from exc
        self.device = device
        self._config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
        if threads > 0:
            self._config["INFERENCE_NUM_THREADS"] = threads
        self._inputs = [_spec(p) for p in self._model.inputs]
        self._outputs = [_spec(p) for p in self._model.outputs]
        self._metadata = _metadata(self.path, self._model)
        self._max_cached = max(1, max_cached_shapes)
        self._requests: dict[Signature, Any] = {}  # shape signature -> infer request of its compiled model
        self._lock = threading.Lock()  # one request and its buffers serve one call at a time

    def _infer(self, feeds: Mapping[str, np.ndarray], outputs_on_device: bool) -> dict[str, np.ndarray]:
        key = tuple(tuple(feeds[s.name].shape) for s in self._inputs)
        with self._lock:
            request = self._requests.get(key) or self._compile(key)
            for i, spec in enumerate(self._inputs):
                request.get_input_tensor(i).data[...] = feeds[spec.name]
            request.infer()
            # views of the request's own output memory: the same buffers for every call of this shape
            return {spec.name: request.get_output_tensor(i).data for i, spec in enumerate(self._outputs)}

    def _compile(self, key: Signature) -> Any:
        """Reshape a copy of the model to this signature, compile it and keep one infer request."""
        model = self._model.clone()
        if any(spec.is_dynamic for spec in self._inputs):
            model.reshape({i: list(shape) for i, shape in enumerate(key)})
        try:
            compiled = self._core.compile_model(model, self.device, self._config)
        except Exception as exc:
            raise EngineError(
                f"{self.path.name}: OpenVINO cannot compile for input shapes {key}: {exc}"
            ) from exc
        if len(self._requests) >= self._max_cached:
            self._requests.pop(next(iter(self._requests)))  # oldest signature
        request = compiled.create_infer_request()
        self._requests[key] = request
        return request

    def close(self) -> None:
        self._requests.clear()


def _spec(port: Any) -> TensorSpec:
    shape: tuple[Dim, ...] = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    try:
        dtype = np.dtype(port.get_element_type().to_dtype())
    except Exception as exc:
        raise EngineError(
            f"tensor '{port.get_any_name()}' has unsupported type {port.get_element_type()}"
        ) from exc
    return TensorSpec(port.get_any_name(), shape, dtype)


def _metadata(path: Path, model: Any) -> dict[str, str]:
    """An ONNX's ``metadata_props``; an IR's copy of them in its runtime info."""
    if path.suffix == ".onnx":
        return onnx_metadata(path)
    if not model.has_rt_info([IR_METADATA_KEY]):
        return {}
    keys = model.get_rt_info([IR_METADATA_KEY]).astype(dict)
    return {str(k): model.get_rt_info([IR_METADATA_KEY, k]).astype(str) for k in keys}


def ir_metadata(path: str | Path) -> dict[str, str]:
    """The metadata an OpenVINO IR written by ``modelops.nncf_recipes`` carries."""
    import openvino as ov  # lazy: ~0.8 s to import; only OpenVINO runs need it

    return _metadata(Path(path), ov.Core().read_model(str(path)))


class CompiledModelEngine(LoadedSpecs, Engine):
    """An ``Engine`` over an already compiled ``openvino.CompiledModel`` (no file: NNCF's accuracy
    control compiles each candidate itself); ``path`` names it and ``metadata`` says what it is."""

    backend = "openvino"

    def __init__(self, compiled: Any, path: str | Path, metadata: Mapping[str, str]) -> None:
        super().__init__(path)
        self._request = compiled.create_infer_request()
        self._inputs = [_spec(p) for p in compiled.inputs]
        self._outputs = [_spec(p) for p in compiled.outputs]
        self._metadata = dict(metadata)

    def _infer(self, feeds: Mapping[str, np.ndarray], outputs_on_device: bool) -> dict[str, np.ndarray]:
        # a compiled model may keep dynamic dims: hand over whole tensors, each call sets the shape
        self._request.infer({i: np.ascontiguousarray(feeds[s.name]) for i, s in enumerate(self._inputs)})
        return {s.name: self._request.get_output_tensor(i).data for i, s in enumerate(self._outputs)}
