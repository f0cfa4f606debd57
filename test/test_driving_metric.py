"""PilotNet's task metric for the precision recipes (MSE of the Pilot stage's (v, w) against the expert's
recorded commands) and the NNCF accuracy restorer's log read into the layers it left in float."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from trt_perception.evaluation.task_metric import driving_metric
from trt_perception.inference.engine import EngineError
from trt_perception.modelops.nncf_recipes import _RevertedLog
from trt_perception.stages.pilot import denormalise

ROOT = Path(__file__).resolve().parents[1]
PILOTNET = ROOT / "models" / "pilotnet.onnx"


def test_driving_metric_is_the_stage_mse_in_command_units() -> None:
    from tools.train_pilotnet import collect
    from trt_perception.inference.factory import open_engine

    views, commands = collect(5, 2, 1.0)  # simulator views as the trainer records them
    metric = driving_metric(views, commands)
    assert len(metric.frames) == len(views) and not metric.higher_is_better and metric.name == "MSE"
    engine = open_engine(PILOTNET, "onnxruntime")
    raw = np.concatenate(
        [
            engine.infer({"image": v[None].transpose(0, 3, 1, 2) / np.float32(255)})["cmd"].copy()
            for v in views
        ]
    )
    # the stage's units: v in [2, 12] m/s, w in [-2, 2] rad/s, outputs clipped as the stage clips them
    pred = np.column_stack([denormalise(raw[:, 0], 2, 12), denormalise(raw[:, 1], -2, 2)])
    truth = np.column_stack([denormalise(commands[:, 0], 2, 12), denormalise(commands[:, 1], -2, 2)])
    scores = metric.scores(PILOTNET)
    assert scores["MSE"] == pytest.approx(float(((pred - truth) ** 2).mean()), rel=1e-5)
    assert scores["MSE[w]"] == pytest.approx(float(((pred[:, 1] - truth[:, 1]) ** 2).mean()), rel=1e-5)
    assert metric(PILOTNET) == scores["MSE"]
    with pytest.raises(EngineError, match="3 views for 2 commands"):
        driving_metric(views[:3], commands[:2])


def _info(msg: str) -> logging.LogRecord:
    return logging.LogRecord("nncf", logging.INFO, __file__, 0, msg, None, None)


def test_reverted_log_drops_a_rolled_back_round() -> None:
    """NNCF undoes a restoration round that made the metric worse and only then re-ranks: the layers
    in float are those of the rounds it kept (read from its own log lines)."""
    log = _RevertedLog()
    log.emit(_info("Total number of quantized operations in the model: 9"))
    log.emit(_info("Reverted 1 operations to the floating-point precision: \n\t/head/fc2/MatMul"))
    log.emit(_info("Accuracy drop with the new quantization scope is 0.17 (DropType.RELATIVE)"))
    log.emit(_info("Reverted 2 operations to the floating-point precision: \n\t/conv0\n\t/conv0/Add"))
    assert log.reverted == ["/head/fc2/MatMul", "/conv0", "/conv0/Add"]  # in float while it is measured
    log.emit(_info("Re-calculating ranking scores for remaining groups"))  # worse: rolled back
    log.emit(_info("Reverted 1 operations to the floating-point precision: \n\t/head/fc1/MatMul"))
    log.emit(_info("1 out of 9 were reverted back to the floating-point precision:\n\t/head/fc2/MatMul"))
    assert log.reverted == ["/head/fc2/MatMul", "/head/fc1/MatMul"]
