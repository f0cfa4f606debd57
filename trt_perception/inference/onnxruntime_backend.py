"""ONNX Runtime backend: the reference (FP32 on the CPU) and the fallback where TensorRT is absent."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .engine import Dim, Engine, EngineError, TensorSpec

_ORT_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}

#: Preferred order; only the ones the installed build offers are used.
DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


class OnnxRuntimeEngine(Engine):
    backend = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        providers: Sequence[str] | None = None,
        intra_op_threads: int = 0,
    ) -> None:
        super().__init__(path)
        import onnxruntime as ort

        if not self.path.is_file():
            raise EngineError(f"model file not found: {self.path}")
        available = ort.get_available_providers()
        wanted = [p for p in (providers or DEFAULT_PROVIDERS) if p in available] or ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra_op_threads
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(self.path), sess_options=opts, providers=wanted)
        except Exception as exc:  # ORT raises several private exception types for bad files
            raise EngineError(f"cannot load ONNX model {self.path}: {exc}") from exc
        self.providers = self._session.get_providers()
        self._inputs = [_spec(t) for t in self._session.get_inputs()]
        self._outputs = [_spec(t) for t in self._session.get_outputs()]
        self._output_names = [s.name for s in self._outputs]
        meta = self._session.get_modelmeta()
        self._metadata = dict(meta.custom_metadata_map)

    @property
    def inputs(self) -> list[TensorSpec]:
        return self._inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self._outputs

    @property
    def metadata(self) -> dict[str, str]:
        return self._metadata

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.check_feeds(feeds)
        start = time.perf_counter()
        results = self._session.run(self._output_names, dict(feeds))
        self.last_latency_ms = (time.perf_counter() - start) * 1e3
        return dict(zip(self._output_names, results))


def _spec(node: object) -> TensorSpec:
    shape: tuple[Dim, ...] = tuple(d if isinstance(d, int) else (d or None) for d in node.shape)  # type: ignore[attr-defined]
    dtype = _ORT_TO_NUMPY.get(node.type)  # type: ignore[attr-defined]
    if dtype is None:
        raise EngineError(f"tensor '{node.name}' has unsupported type {node.type}")  # type: ignore[attr-defined]
    return TensorSpec(node.name, shape, np.dtype(dtype))  # type: ignore[attr-defined]
