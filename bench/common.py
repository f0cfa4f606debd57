"""What every benchmark records the same way: the machine it ran on, timing summaries and its targets.

The result schema: a JSON object with ``machine`` (``machine()``, its ``load_average`` included) and
``targets``, a list of ``target()`` rows; ``bench/summarize.py`` tabulates those rows.
"""

from __future__ import annotations

import contextlib
import operator
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from trt_perception.metrics.latency import describe


def machine() -> dict[str, Any]:
    """CPU, core count, load average (the machine is shared: numbers need it) and library versions."""
    import onnxruntime as ort

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
    }


def summary(ms: Sequence[float]) -> dict[str, float]:
    """The benches' short form of ``metrics.latency.describe``: median, mean, p95 and n."""
    d = describe(ms)
    return {"median_ms": d["median_ms"], "mean_ms": d["mean_ms"], "p95_ms": d["p95_ms"], "n": d["count"]}


def timed(fn: Callable[[], Any], iters: int, warmup: int = 5) -> dict[str, float]:
    """``summary`` of ``iters`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t) * 1e3)
    return summary(ms)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}


def target(
    name: str, value: Any, op: str, limit: Any, unit: str = "", *, shown: str | None = None, **extra: Any
) -> dict[str, Any]:
    """One row of a result's ``targets``: ``value`` against ``<op> <limit> <unit>``.

    ``pass`` is None when ``value`` is None (not measured); ``op="report"`` records a figure with no
    target. ``shown`` replaces the value in the summary table (e.g. "3.8x median (5.8 vs 22 ms)");
    ``extra`` keys (a note, secondary checks) are kept as they are.
    """
    if op == "report":
        wanted, passed = None, None
    else:
        wanted = f"{op} {limit}" + (f" {unit}" if unit else "")
        passed = None if value is None else bool(_OPS[op](value, limit))
    row = {"name": name, "value": value, "target": wanted, "pass": passed, **extra}
    if shown is not None:
        row["shown"] = shown
    return row
