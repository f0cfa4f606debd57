"""The stages the nodes run, as parameter sets: each node derives its stage parameters from these
(``StageParams.params(prefix)``) and builds the stage config back with ``StageParams.config``. The
config dataclass declares every field; here are only the node-side defaults it lacks (the model)
or that differ for a deployed node (the segmenter's input size), shared by every node running it."""

from __future__ import annotations

from ..ros.stage_params import StageParams
from ..stages.camera import CameraConfig
from ..stages.detector import DetectorConfig
from ..stages.pilot import PilotConfig
from ..stages.plate_consensus import PlateConsensusConfig
from ..stages.plate_reader import PlateReaderConfig
from ..stages.segmenter import SegmenterConfig
from ..stages.tracker import TrackerConfig

DETECTOR = StageParams(DetectorConfig, {"model": "models/detector.onnx"})
PLATE_READER = StageParams(PlateReaderConfig, {"model": "models/plate_reader_ctc.onnx"})
# 640x352: the sample model's size, so an image of another size is not rounded to a new network size.
SEGMENTER = StageParams(
    SegmenterConfig, {"model": "models/segmenter.onnx", "input_width": 640, "input_height": 352}
)
PILOT = StageParams(PilotConfig, {"model": "models/pilotnet.onnx"})
CAMERA = StageParams(CameraConfig)
TRACKER = StageParams(TrackerConfig)
PLATE_CONSENSUS = StageParams(PlateConsensusConfig)
