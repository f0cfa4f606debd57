"""Where a node finds its files: relative paths (``models/detector.onnx``, ``config/...``) work from
the working directory, the installed package share folder and the source tree alike, so the same
parameter file serves ``ros2 run``, launch files and a checkout."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rclpy.node import Node

from .engine_wait import resolve_model
from .params import Param

PACKAGE = "trt_perception"

#: How an inference node asks the engine builder for its engine (read by ``params_model_file``).
ENGINE_PARAMETERS: tuple[Param, ...] = (
    Param("precision", "fp16", "Engine precision asked from the engine builder (fp32 | fp16 | int8)."),
    Param(
        "use_engine_builder",
        False,
        "Wait for the engine_builder node's engine instead of loading 'model' directly.",
    ),
    Param(
        "engine_wait_timeout", 600.0, "Seconds to wait for the engine builder before falling back to 'model'."
    ),
)


def package_roots() -> list[Path]:
    """The installed share folder (when ament knows the package), then the source tree."""
    roots = []
    try:
        from ament_index_python.packages import get_package_share_directory

        roots.append(Path(get_package_share_directory(PACKAGE)))
    except Exception:  # not installed through ament (editable install, plain checkout)
        pass
    roots.append(Path(__file__).resolve().parents[2])
    return roots


def package_file(relative: str) -> Path | None:
    """``relative`` under the first package root that has it, else None."""
    for root in package_roots():
        if (root / relative).exists():
            return root / relative
    return None


def resolve_file(path: str) -> str:
    """``path`` as given when empty, absolute or existing (from the cwd), else the package's copy."""
    if not path or Path(path).is_absolute() or Path(path).exists():
        return path
    found = package_file(path)
    return str(found) if found is not None else path


def model_file(
    node: Node, model: str, precision: str, use_builder: bool, timeout_s: float, batch: int = 1
) -> str:
    """The file an inference node loads: ``model`` resolved as above, or the engine builder's engine
    for it (taking ``batch`` frames per call) when ``use_builder`` is set and one is ready (see
    ``engine_wait.resolve_model``)."""
    return resolve_model(node, resolve_file(model), precision, use_builder, timeout_s, batch)


def params_model_file(node: Node, params: Mapping[str, Any], key: str = "model", batch: int = 1) -> str:
    """``model_file`` for ``params[key]`` with the node's ``ENGINE_PARAMETERS`` values."""
    return model_file(
        node,
        str(params[key]),
        str(params["precision"]),
        bool(params["use_engine_builder"]),
        float(params["engine_wait_timeout"]),
        batch,
    )
