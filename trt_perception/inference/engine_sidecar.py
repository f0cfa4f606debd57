"""An engine's JSON sidecar, as the runtime reads it (ROS-free, no TensorRT).

``modelops.engine_cache`` writes ``<engine>.json`` next to every plan it builds: the cache key, size and
checksum, and the ONNX's metadata plus its resolved ``ModelInfo`` under ``metadata``. A runtime only
needs that last part, so it reads it here and never imports the builder.
"""

from __future__ import annotations

import json
from pathlib import Path

from .model_info import METADATA_KEY


def sidecar_path(engine_path: Path) -> Path:
    """``<engine>.json`` next to the engine."""
    return engine_path.with_name(engine_path.name + ".json")


def engine_metadata(engine_path: str | Path) -> dict[str, str]:
    """The model metadata kept in an engine's cache sidecar (empty without one: a bare plan)."""
    try:
        meta = json.loads(sidecar_path(Path(engine_path)).read_text())
    except (OSError, ValueError):
        return {}
    stored = meta.get("metadata") or {}
    return {str(k): str(v) for k, v in stored.items()} if METADATA_KEY in stored else dict(stored)
