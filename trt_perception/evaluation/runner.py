"""Run every configuration over the same frames and collect accuracy and latency side by side.

Latency per frame comes from two clocks, as in the thesis' end-to-end vs inference-only tables:
``end_to_end`` is the wall time of the whole stage call (pre-processing, inference, decoding, NMS),
``inference`` the sum of the engine calls the stage recorded during that frame. Frame decoding and
ground-truth handling are outside both clocks.
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
from tqdm import tqdm

from ..metrics.latency import INFERENCE, LatencyRecorder, describe
from .sources import Source
from .tasks import EvalConfig, Task, TaskScores


class _Collecting(LatencyRecorder):
    """A recorder that also keeps every sample in order, so the runner can split them per frame."""

    def __init__(self) -> None:
        super().__init__(window=1000)
        self.log: list[tuple[str, float]] = []

    def record(self, stage: str, ms: float, at: float | None = None) -> None:
        super().record(stage, ms, at)
        self.log.append((stage, float(ms)))


def latency_stats(ms: np.ndarray) -> dict[str, float]:
    """mean/std/min/max/median/p95 in ms and FPS (avg = 1000/mean; min/max from the slowest/fastest frame)."""
    d = describe(ms)
    if not d:
        return {}
    keys = ("mean_ms", "std_ms", "min_ms", "max_ms", "median_ms", "p95_ms")
    return {
        **{k: d[k] for k in keys},
        "fps_avg": d["fps"],
        "fps_min": 1000.0 / d["max_ms"] if d["max_ms"] > 0 else float("inf"),
        "fps_max": 1000.0 / d["min_ms"] if d["min_ms"] > 0 else float("inf"),
    }


@dataclass
class ConfigResult:
    config: EvalConfig
    scores: TaskScores | None = None
    end_to_end_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    inference_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: time to get each frame from the source (decode / bag read), outside the latency clocks
    read_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    build_s: float = 0.0  # model load + stage construction
    frames: int = 0
    #: image id -> the task's per-frame output (COCO result dicts for detection), for re-scoring
    outputs: dict[int, Any] = field(default_factory=dict)
    error: str = ""  # the configuration could not be built or run (reported, others continue)
    wall_s: float = 0.0

    def latency(self) -> dict[str, dict[str, float]]:
        return {
            "end_to_end": latency_stats(self.end_to_end_ms),
            "inference": latency_stats(self.inference_ms),
            "data_read": latency_stats(self.read_ms),
        }


@dataclass
class EvalResult:
    task: Task
    source: Source
    results: list[ConfigResult]
    reference: str
    started: str
    frames: int
    warnings: list[str]

    def by_name(self, name: str) -> ConfigResult:
        for r in self.results:
            if r.config.name == name:
                return r
        raise KeyError(name)


def machine_info() -> dict[str, Any]:
    import onnxruntime  # lazy: ~0.4 s to import, here for its version alone

    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": onnxruntime.get_available_providers(),
    }
    try:
        import openvino  # lazy: ~0.8 s to import, here for its version alone

        info["openvino"] = openvino.__version__
    except ImportError:
        info["openvino"] = None
    try:
        import tensorrt  # type: ignore[import-not-found]  # lazy: optional, absent on most machines

        info["tensorrt"] = tensorrt.__version__
    except Exception:
        info["tensorrt"] = None
    return info


def evaluate(
    source: Source,
    task: Task,
    configs: list[EvalConfig],
    reference: str | None = None,
    warmup: int = 3,
    progress: bool = True,
) -> EvalResult:
    """Run ``configs`` over ``source``'s frames (each config sees the same frames) and score them."""
    if not configs:
        raise ValueError("no configuration to evaluate")
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise ValueError(f"configuration names must be unique: {names}")
    ref = reference or configs[0].name
    if ref not in names:
        raise ValueError(f"reference '{ref}' is not one of the configurations {names}")
    task.bind(source)
    source.load_masks = task.needs_masks
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    results = [_run_one(source, task, cfg, warmup, progress) for cfg in configs]
    frames = max((r.frames for r in results), default=0)
    return EvalResult(task, source, results, ref, started, frames, list(source.warnings))


def _run_one(source: Source, task: Task, cfg: EvalConfig, warmup: int, progress: bool) -> ConfigResult:
    result = ConfigResult(cfg)
    rec = _Collecting()
    t_build = time.perf_counter()
    try:
        predict = task.build(cfg, rec)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    result.build_s = time.perf_counter() - t_build
    outputs: dict[int, Any] = {}
    e2e: list[float] = []
    inf: list[float] = []
    read: list[float] = []
    t_start = time.perf_counter()
    bar = tqdm(total=len(source) or None, desc=cfg.name, unit="frame", disable=not progress, leave=True)
    frames = source.frames()
    try:
        while True:
            t_read = time.perf_counter()
            frame = next(frames, None)
            if frame is None:
                break
            read.append((time.perf_counter() - t_read) * 1e3)
            if not outputs:  # warm-up on the first frame: lazy allocations are not the model's speed
                for _ in range(warmup):
                    predict(frame)
                rec.log.clear()
            mark = len(rec.log)
            t0 = time.perf_counter()
            out = outputs[frame.image_id] = predict(frame)
            elapsed = (time.perf_counter() - t0) * 1e3
            if task.time_empty_frames or len(out):
                e2e.append(elapsed)
                inf.append(sum(ms for stage, ms in rec.log[mark:] if stage.endswith(INFERENCE)))
            bar.update(1)
    except Exception as exc:
        result.error = f"{type(exc).__name__} after {len(outputs)} frames: {exc}"
    finally:
        bar.close()
    result.wall_s = time.perf_counter() - t_start
    result.frames = len(outputs)
    result.outputs = outputs
    result.end_to_end_ms = np.asarray(e2e)
    result.read_ms = np.asarray(read)
    # stages that record no engine time (a stand-in, a fused pipeline) get no inference clock
    has_inference = any(stage.endswith(INFERENCE) for stage in rec.stages())
    result.inference_ms = np.asarray(inf) if has_inference else np.zeros(0)
    if outputs:
        result.scores = task.score(source, outputs)
    return result
