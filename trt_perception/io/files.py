"""Writing files that readers in other processes may open at any moment."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path | str, data: bytes | str) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    raw = data.encode() if isinstance(data, str) else data

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())

    atomic_save(path, write)


def atomic_save(path: Path | str, save: Callable[[Path], object]) -> None:
    """``save(tmp)`` writes a unique temp file in ``path``'s folder, then it is renamed onto ``path``.

    The temp name is unique (``mkstemp``), so two processes writing the same file never share one;
    the rename is atomic on one filesystem, so a reader never sees half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def model_size_bytes(path: Path | str) -> int:
    """A model file's size on disk; an OpenVINO IR's weights live in the ``.bin`` beside its ``.xml``."""
    path = Path(path)
    weights = path.with_suffix(".bin")
    return path.stat().st_size + (weights.stat().st_size if path.suffix == ".xml" and weights.is_file() else 0)
