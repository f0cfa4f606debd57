"""The number a precision recipe is judged by: the task's primary metric on held-out frames.

mAP@[.5:.95] for detectors, exact match for plate readers, mIoU for segmenters, MSE of (v, w) for
PilotNet -- computed by the evaluation tasks (``evaluation.tasks``: the deployed stage runs each
frame, ``Task.score`` scores them), never by output fidelity to FP32. The frames must not be the
calibration frames (``check_held_out``): a recipe tuned and judged on the same images over-reports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..inference.engine import Engine, EngineError
from ..inference.factory import in_memory
from ..inference.model_info import onnx_info
from ..metrics.latency import LatencyRecorder
from ..stages.pilot import PilotConfig, denormalise
from .sources import CocoFolderSource, Frame, Source
from .tasks import EvalConfig, RegressionTask, Task, make_task

#: ModelInfo ``task`` / ``decoder`` -> evaluation task, for models that say what they are.
_TASK_OF_MODEL = {"detect": "detection", "ctc": "plates", "heads": "plates"}


def task_of_model(model: str | Path) -> str:
    """The evaluation task a model's metadata implies ('' when it does not say)."""
    info = onnx_info(model)
    return _TASK_OF_MODEL.get(info.task, _TASK_OF_MODEL.get(info.decoder, ""))


@dataclass
class TaskMetric:
    """``metric(model_path)`` / ``metric.of_engine(engine)``: the task's primary metric over ``frames``."""

    task: Task
    source: Source
    frames: list[Frame]
    #: stage options (decoder, charset, ...) as ``EvalConfig.options``
    options: dict[str, Any] = field(default_factory=dict)
    backend: str = "auto"

    @property
    def name(self) -> str:
        return self.task.primary

    @property
    def higher_is_better(self) -> bool:
        return self.task.higher_is_better

    def __call__(self, model: str | Path, frames: Sequence[Frame] | None = None) -> float:
        return float(self.scores(model, frames)[self.task.primary])

    def scores(self, model: str | Path, frames: Sequence[Frame] | None = None) -> dict[str, float]:
        """Every number of the task's score (the primary one and its parts, e.g. ``MSE[w]``)."""
        cfg = EvalConfig("candidate", Path(model), self.backend, options=self.options)
        predict = self.task.build(cfg, LatencyRecorder())
        outputs = {f.image_id: predict(f) for f in (self.frames if frames is None else frames)}
        return self.task.score(self.source, outputs).metrics

    def of_engine(self, engine: Engine, frames: Sequence[Frame] | None = None) -> float:
        """The metric of an engine that has no file (NNCF's compiled candidates)."""
        with in_memory(engine) as path:
            return self(path, frames)

    def subset(self, count: int) -> TaskMetric:
        return dataclasses.replace(self, frames=self.frames[:count] if count > 0 else self.frames)


def task_metric(
    task_name: str, data: str | Path, limit: int = 0, options: dict[str, Any] | None = None
) -> TaskMetric:
    """The metric of ``task_name`` on a COCO folder (``annotations.json`` + ``images/`` [+ ``masks/``])."""
    task = make_task(task_name)
    source = CocoFolderSource(data, limit=limit)
    task.bind(source)
    source.load_masks = task.needs_masks
    frames = list(source.frames())
    if not frames:
        raise EngineError(f"{data}: no frames to validate on")
    return TaskMetric(task, source, frames, dict(options or {}))


#: Pilot stage options for views recorded as the network sees them (the crop already resized to 200x66):
#: no crop, and the stage's resize is then the identity, so the deployed pre-processing still runs.
NETWORK_VIEW = {"crop_top": 0, "crop_bottom": 0}


def driving_metric(views_rgb: np.ndarray, commands: np.ndarray, description: str = "") -> TaskMetric:
    """PilotNet's metric: MSE of the ``Pilot`` stage's (v, w) against the expert's recorded commands.

    ``views_rgb``: [N, 66, 200, 3] RGB uint8 and ``commands``: [N, 2] normalised to [-1, 1], as
    ``tools.train_pilotnet.collect`` records them; the MSE is in (m/s, rad/s), the stage's units,
    the commands mapped through the stage's default ranges (those the trainer labelled with).
    """
    if len(views_rgb) != len(commands) or not len(views_rgb):
        raise EngineError(f"driving samples: {len(views_rgb)} views for {len(commands)} commands")
    cfg = PilotConfig(model="")  # only its default ranges
    truth = np.column_stack(
        [denormalise(commands[:, 0], cfg.v_min, cfg.v_max), denormalise(commands[:, 1], cfg.w_min, cfg.w_max)]
    )
    frames = [
        Frame(i, i, 0, np.ascontiguousarray(rgb[:, :, ::-1]), f"view {i}", target=t)
        for i, (rgb, t) in enumerate(zip(views_rgb, truth))
    ]
    source = Source(description or f"{len(frames)} driving views")
    return TaskMetric(RegressionTask(), source, frames, dict(NETWORK_VIEW))


def check_held_out(validation: str | Path, calibration: str | Path | None) -> None:
    """Refuse to judge a recipe on the images it was calibrated on."""
    if calibration is None:
        return
    val, cal = Path(validation).resolve(), Path(calibration).resolve()
    val_dir = val.parent if val.is_file() else val
    if val_dir == cal or cal in val_dir.parents or val_dir in cal.parents:
        raise EngineError(
            f"validation data {validation} overlaps the calibration data {calibration}: "
            "the task metric must come from a held-out split"
        )
