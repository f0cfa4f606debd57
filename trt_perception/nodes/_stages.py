"""The stages the nodes run, as parameter sets: each node derives its stage parameters from these
(``StageParams.params(prefix)``) and builds the stage config back with ``StageParams.config``. The
config dataclass declares every field; here are only the node-side defaults it lacks (the model)
or that differ for a deployed node (the segmenter's input size), shared by every node running it,
and the fields that may change while a node runs (``live``: the stage is rebuilt around its engine
from the next frame); the others are read at configure."""

from __future__ import annotations

from typing import Any, TypeVar

from ..ros.stage_params import StageParams
from ..stages.camera import CameraConfig
from ..stages.detector import Detector, DetectorConfig
from ..stages.model_stage import ModelStage
from ..stages.pilot import PilotConfig
from ..stages.plate_consensus import PlateConsensusConfig
from ..stages.plate_reader import PlateReaderConfig
from ..stages.segmenter import SegmenterConfig
from ..stages.tracker import TrackerConfig

S = TypeVar("S", bound=ModelStage[Any])

DETECTOR = StageParams(
    DetectorConfig,
    {"model": "models/detector.onnx"},
    live=frozenset({"conf_threshold", "iou_threshold", "max_detections", "classes", "class_agnostic_nms"}),
)
PLATE_READER = StageParams(
    PlateReaderConfig,
    {"model": "models/plate_reader_ctc.onnx"},
    live=frozenset({"plate_class", "min_width", "min_height", "max_width", "max_height", "min_confidence"}),
)
# 640x352: the sample model's size, so an image of another size is not rounded to a new network size.
SEGMENTER = StageParams(
    SegmenterConfig,
    {"model": "models/segmenter.onnx", "input_width": 640, "input_height": 352},
    live=frozenset({"output_resolution", "overlay_alpha"}),
)
PILOT = StageParams(
    PilotConfig,
    {"model": "models/pilotnet.onnx"},
    live=frozenset({"crop_top", "crop_bottom", "v_min", "v_max", "w_min", "w_max"}),
)
CAMERA = StageParams(CameraConfig)
TRACKER = StageParams(TrackerConfig)
PLATE_CONSENSUS = StageParams(PlateConsensusConfig)


def rebuilt(stage: S, cfg: Any) -> S:
    """``stage`` built again from ``cfg`` around its engine (no model reload): how a live parameter
    reaches a stage that derives state from its config at construction (a class filter's ids)."""
    extra = {"max_batch": stage.max_batch} if isinstance(stage, Detector) else {}
    return type(stage)(cfg, stage.latency, stage.engine, stage.prefix, **extra)


def close_stage(stage: Any) -> None:
    """Release a stage's engine now (a node's cleanup), not whenever the garbage collector gets to it."""
    if stage is not None:
        stage.engine.close()
