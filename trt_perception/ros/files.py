"""Where a node finds its files: relative paths (``models/detector.onnx``, ``config/...``) work from
the working directory, the installed package share folder and the source tree alike, so the same
parameter file serves ``ros2 run``, launch files and a checkout."""

from __future__ import annotations

from pathlib import Path

from rclpy.node import Node

from .engine_wait import resolve_model

PACKAGE = "trt_perception"


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


def model_file(node: Node, model: str, precision: str, use_builder: bool, timeout_s: float) -> str:
    """The file an inference node loads: ``model`` resolved as above, or the engine builder's engine
    for it when ``use_builder`` is set and one is ready (see ``engine_wait.resolve_model``)."""
    return resolve_model(node, resolve_file(model), precision, use_builder, timeout_s)
