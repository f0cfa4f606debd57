"""ONNX Runtime backend: the reference (FP32 on the CPU) and the fallback where TensorRT is absent.

The hot path allocates nothing once an input shape has been seen: per input-shape signature the
engine keeps an ``IOBinding`` whose outputs are bound to preallocated numpy arrays (shapes learnt
from one plain ``run`` the first time), so ``run_with_iobinding`` writes straight into them. The
returned arrays are those buffers: copy them to keep results past the next call.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .engine import Engine, EngineError, LoadedSpecs, TensorSpec
from .tensors import Dim

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


class OnnxRuntimeEngine(LoadedSpecs, Engine):
    backend = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        providers: Sequence[str] | None = None,
        intra_op_threads: int = 0,
        io_binding: bool = True,
        max_cached_shapes: int = 8,
        allow_spinning: bool = False,
    ) -> None:
        super().__init__(path)
        import onnxruntime as ort  # lazy: ~0.4 s to import; processes running only other backends skip it

        if not self.path.is_file():
            raise EngineError(f"model file not found: {self.path}")
        available = ort.get_available_providers()
        names = [p for p in (providers or DEFAULT_PROVIDERS) if p in available] or ["CPUExecutionProvider"]
        wanted = [(p, _provider_options(p)) for p in names]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra_op_threads
        # Off by default (ORT's is on): a robot runs several sessions and ROS executors on few cores, and
        # idle spinning threads steal them; measured on 2 loaded cores: detector 4-7 vs 12 ms, the
        # detector+reader+segmenter chain 23 vs 68 ms per frame, 14 vs 61 ms CPU. Turn it on for one
        # session on otherwise idle cores.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
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
        self._use_binding = io_binding
        self._max_cached = max(1, max_cached_shapes)
        # input-shape signature -> (binding, {output name: preallocated array})
        self._bound: dict[tuple[tuple[int, ...], ...], tuple[Any, dict[str, np.ndarray]]] = {}
        self._lock = threading.Lock()  # a binding and its output buffers serve one call at a time

    def _infer(self, feeds: Mapping[str, np.ndarray], outputs_on_device: bool) -> dict[str, np.ndarray]:
        if not self._use_binding:
            results = self._session.run(self._output_names, dict(feeds))
            return dict(zip(self._output_names, results))
        key = tuple(tuple(feeds[s.name].shape) for s in self._inputs)
        with self._lock:
            entry = self._bound.get(key)
            if entry is None:
                return self._first_run(key, feeds)
            binding, outputs = entry
            for name, arr in feeds.items():
                binding.bind_cpu_input(name, np.ascontiguousarray(arr))
            self._session.run_with_iobinding(binding)
            return outputs

    def _first_run(
        self, key: tuple[tuple[int, ...], ...], feeds: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Plain run to learn the output shapes, then bind preallocated outputs for this signature."""
        results = self._session.run(self._output_names, dict(feeds))
        outputs = {name: np.empty_like(r) for name, r in zip(self._output_names, results)}
        binding = self._session.io_binding()
        for name, arr in outputs.items():
            binding.bind_output(name, "cpu", 0, arr.dtype, list(arr.shape), arr.ctypes.data)
        if len(self._bound) >= self._max_cached:
            self._bound.pop(next(iter(self._bound)))  # oldest signature
        self._bound[key] = (binding, outputs)
        for name, r in zip(self._output_names, results):
            outputs[name][...] = r
        return outputs


def _provider_options(name: str) -> dict[str, str]:
    """ORT's TensorRT EP builds an engine per session: cache engines and timings across restarts."""
    if name != "TensorrtExecutionProvider":
        return {}
    cache = Path(
        os.environ.get("TRT_PERCEPTION_ORT_TRT_CACHE", Path.home() / ".cache" / "trt_perception" / "ort_trt")
    )
    cache.mkdir(parents=True, exist_ok=True)
    return {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache),
    }


def _spec(node: object) -> TensorSpec:
    shape: tuple[Dim, ...] = tuple(d if isinstance(d, int) else (d or None) for d in node.shape)  # type: ignore[attr-defined]
    dtype = _ORT_TO_NUMPY.get(node.type)  # type: ignore[attr-defined]
    if dtype is None:
        raise EngineError(f"tensor '{node.name}' has unsupported type {node.type}")  # type: ignore[attr-defined]
    return TensorSpec(node.name, shape, np.dtype(dtype))  # type: ignore[attr-defined]
