"""Open a model or engine file with the right backend."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from .engine import Engine, EngineError
from .onnxruntime_backend import OnnxRuntimeEngine
from .openvino_backend import IR_SUFFIXES, OpenVinoEngine
from .trt_features import load_tensorrt

BACKENDS = ("auto", "onnxruntime", "openvino", "tensorrt")

#: Engines that exist only in memory, served by ``open_engine`` under a path (``in_memory``).
_IN_MEMORY: dict[Path, Engine] = {}


def tensorrt_available() -> bool:
    """True when real TensorRT imports (the type stubs alone leave an empty ``tensorrt`` namespace), or
    TensorRT-RTX where ``$TRT_PERCEPTION_TENSORRT=tensorrt_rtx`` selects it (``trt_features``)."""
    return not tensorrt_unavailable_reason()


def tensorrt_unavailable_reason() -> str:
    try:
        load_tensorrt(rtx_fallback=False)
    except ImportError as exc:
        return f"TensorRT is not installed ({exc})"
    return ""


def open_engine(path: str | Path, backend: str = "auto", **options: object) -> Engine:
    """``.onnx`` -> ONNX Runtime, ``.engine``/``.plan`` -> TensorRT, ``.xml`` (OpenVINO IR) -> OpenVINO;
    ``backend`` forces one (``openvino`` reads an ONNX directly).

    ``auto`` on an ONNX file stays on ONNX Runtime: building a TensorRT engine is the engine
    builder's job, so a node never blocks for minutes on a build it did not ask for.
    """
    path = Path(path)
    if path in _IN_MEMORY:
        return _IN_MEMORY[path]
    if backend not in BACKENDS:
        raise EngineError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    if not path.exists():
        raise EngineError(f"model file not found: {path}")
    is_plan = path.suffix in (".engine", ".plan", ".trt")
    if backend == "tensorrt" or (backend == "auto" and is_plan):
        if not tensorrt_available():
            raise EngineError(f"cannot open {path}: {tensorrt_unavailable_reason()}")
        from .tensorrt_backend import TensorRTEngine  # lazy: imports TensorRT, absent on most machines

        return TensorRTEngine(path, **options)  # type: ignore[arg-type]
    if is_plan:
        raise EngineError(f"{path} is a TensorRT plan; backend '{backend}' cannot run it")
    if backend == "openvino" or path.suffix in IR_SUFFIXES:
        if backend not in ("auto", "openvino"):
            raise EngineError(f"{path} is an OpenVINO IR; backend '{backend}' cannot run it")
        return OpenVinoEngine(path, **options)  # type: ignore[arg-type]
    return OnnxRuntimeEngine(path, **options)  # type: ignore[arg-type]


@contextlib.contextmanager
def in_memory(engine: Engine) -> Iterator[Path]:
    """Inside the block ``open_engine(engine.path)`` returns ``engine``: code that opens models by path
    (the evaluation tasks) can then score a model that exists only in memory, such as the compiled
    candidate NNCF's accuracy control hands its validation function."""
    if engine.path in _IN_MEMORY:
        raise EngineError(f"{engine.path} is already served from memory")
    _IN_MEMORY[engine.path] = engine
    try:
        yield engine.path
    finally:
        del _IN_MEMORY[engine.path]
