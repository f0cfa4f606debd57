"""Which file an inference stage loads, from one engine builder status (ROS-free).

The status is the JSON the ``engine_builder`` node publishes (see ``ros/engine_wait.py``): whether
TensorRT is there and one entry per engine with its model, precision, engine path and build state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def find_entry(status: dict[str, Any], model: str, precision: str, batch: int = 1) -> dict[str, Any] | None:
    """The status entry for ``model`` (same resolved path, else same file name) and ``precision``
    whose engine takes ``batch`` frames per call (its ``max_batch``; 1 when the entry has none)."""
    engines = [
        e
        for e in status.get("engines", [])
        if e.get("precision") == precision and int(e.get("max_batch", 1)) >= batch
    ]
    wanted = Path(model).resolve()
    for e in engines:
        if Path(str(e.get("model", ""))).resolve() == wanted:
            return e
    same_name = [e for e in engines if Path(str(e.get("model", ""))).name == wanted.name]
    return same_name[0] if len(same_name) == 1 else None


def decide(
    status: dict[str, Any] | None, model: str, precision: str, batch: int = 1
) -> tuple[str | None, str]:
    """(file to load or None to keep waiting, why) for one status message (None: nothing yet);
    ``batch``: the frames per call the stage needs (a multi-camera detector: one per camera)."""
    if status is None:
        return None, "no status from the engine builder yet"
    if not status.get("tensorrt", False):
        return model, f"engine builder reports TensorRT unavailable ({status.get('reason', '')})"
    entry = find_entry(status, model, precision, batch)
    if entry is None:
        listed = ", ".join(
            f"{Path(str(e.get('model'))).name}:{e.get('precision')}"
            + (f" (max_batch {e['max_batch']})" if int(e.get("max_batch", 1)) > 1 else "")
            for e in status.get("engines", [])
        )
        wanted = f"{Path(model).name}:{precision}" + (f" for batches of {batch}" if batch > 1 else "")
        hint = f"; give its engines entry ';max_batch={batch}'" if batch > 1 else ""
        return model, f"engine builder does not list {wanted} (it has: {listed or 'none'}){hint}"
    state = entry.get("state")
    if state == "ready":
        return str(entry["engine"]), "ready"
    if state in ("failed", "unavailable"):
        return model, f"engine build {state}: {entry.get('message', '')}"
    return None, f"{state}: {entry.get('message', '')} ({float(entry.get('elapsed_s', 0.0)):.0f} s)"
