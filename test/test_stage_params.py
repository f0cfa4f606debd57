"""Stage config fields are the only declaration of the stage parameters: every field of every stage a
node runs is a parameter of that node (under its prefix) and an entry of ``config/<node>.yaml``, and
the node builds the same config back from the declared defaults."""

from __future__ import annotations

import ast
import dataclasses
import importlib

import pytest
import yaml
from conftest import ROOT

from tools.gen_param_table import node_modules
from trt_perception.nodes import _stages
from trt_perception.ros.params import Param, declare_all
from trt_perception.ros.stage_params import StageParams
from trt_perception.stages.camera import CameraConfig
from trt_perception.stages.detector import DetectorConfig
from trt_perception.stages.fields import HELP, PARAM, field_default
from trt_perception.stages.pilot import PilotConfig
from trt_perception.stages.plate_consensus import PlateConsensusConfig
from trt_perception.stages.plate_reader import PlateReaderConfig
from trt_perception.stages.segmenter import SegmenterConfig
from trt_perception.stages.tracker import TrackerConfig

#: Executable -> {parameter prefix: config of a stage it runs}. A node that imports a stage module
#: must be listed here (``test_every_node_running_a_stage_is_listed``).
RUNS: dict[str, dict[str, type]] = {
    "detector": {"": DetectorConfig, "tracker.": TrackerConfig},
    "plate_reader": {"": PlateReaderConfig},
    "segmentation": {"": SegmenterConfig},
    "pilot": {"": PilotConfig},
    "camera_bridge": {"": CameraConfig},
    "perception_pipeline": {
        "camera.": CameraConfig,
        "detector.": DetectorConfig,
        "plate_reader.": PlateReaderConfig,
        "segmentation.": SegmenterConfig,
        "tracker.": TrackerConfig,
        "plate_consensus.": PlateConsensusConfig,
    },
}
#: Stage module -> its config (the stages a node runs are found by the stage modules it imports).
STAGE_CONFIGS = {cls.__module__.rsplit(".", 1)[1]: cls for c in RUNS.values() for cls in c.values()}
#: Modules under stages/ that are not stages a node configures.
NOT_STAGES = {"fields"}


def _yaml_keys(exe: str) -> set[str]:
    doc = yaml.safe_load((ROOT / "config" / f"{exe}.yaml").read_text())
    return set(doc["/**"]["ros__parameters"])


def _stage_imports(module: str) -> set[str]:
    """Stage modules imported by node module ``module`` (``from ..stages.x import ...``)."""
    tree = ast.parse((ROOT / "trt_perception" / "nodes" / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stages."):
            found.add(node.module.split(".", 1)[1])  # type: ignore[union-attr]
    return found - NOT_STAGES


@pytest.mark.parametrize("exe", sorted(RUNS))
def test_every_stage_field_is_a_node_parameter_and_in_config(exe: str) -> None:
    mod = importlib.import_module(f"trt_perception.nodes.{node_modules()[exe]}")
    declared = {p.name for p in mod.PARAMETERS}
    in_yaml = _yaml_keys(exe)
    for prefix, cls in RUNS[exe].items():
        for f in dataclasses.fields(cls):
            name = prefix + (f.metadata.get(PARAM) or f.name)
            assert f.metadata.get(HELP), f"{cls.__name__}.{f.name} has no description (stages/fields.py)"
            assert name in declared, f"{exe}: {cls.__name__}.{f.name} is not reachable as parameter {name}"
            assert name in in_yaml, f"config/{exe}.yaml lacks {name} ({cls.__name__}.{f.name})"


@pytest.mark.parametrize("exe", sorted(node_modules()))
def test_every_node_running_a_stage_is_listed(exe: str) -> None:
    runs = {cls.__module__.rsplit(".", 1)[1] for cls in RUNS.get(exe, {}).values()}
    imported = _stage_imports(node_modules()[exe]) & set(STAGE_CONFIGS)
    assert imported <= runs, (
        f"{exe} runs {sorted(imported - runs)}: list it in RUNS and derive its parameters"
    )


@pytest.mark.parametrize("name", [n for n in dir(_stages) if isinstance(getattr(_stages, n), StageParams)])
def test_config_from_declared_defaults_is_the_default_config(name: str) -> None:
    stage: StageParams = getattr(_stages, name)
    params = stage.params("x.")
    config = stage.config({p.name: p.default for p in params}, "x.")
    for f in dataclasses.fields(stage.cls):  # type: ignore[arg-type]
        expected = stage.defaults.get(f.name, field_default(f))
        assert getattr(config, f.name) == expected, f"{stage.cls.__name__}.{f.name}"


def test_codecs_and_paths() -> None:
    values = {p.name: p.default for p in _stages.SEGMENTER.params()}
    values.update(fusion_divisor="2", palette=["1,2,3", ""], class_names=["a", "", "b"])
    cfg = _stages.SEGMENTER.config(values, model="m.onnx")
    assert (cfg.fusion_divisor, cfg.palette, cfg.class_names, cfg.model) == (
        2,
        [(1, 2, 3)],
        ["a", "b"],
        "m.onnx",
    )
    camera = {p.name: p.default for p in _stages.CAMERA.params()} | {
        "lossless": "true",
        "source_kind": "file",
    }
    cam = _stages.CAMERA.config(camera)
    assert (cam.lossless, cam.kind) == (True, "file")


class _FakeNode:
    """Just what ``declare_all`` calls: parameter overrides as a launch file would give them."""

    def __init__(self, overrides: dict[str, object]) -> None:
        self.overrides, self.values = overrides, {}

    def declare_parameter(self, name: str, default: object, descriptor: object) -> object:
        self.values[name] = self.overrides.get(name, default)
        return type("P", (), {"value": self.values[name]})()


def test_a_value_outside_its_range_keeps_the_default_and_is_reported() -> None:
    params = (Param("conf_threshold", 0.25, "score", range=(0.0, 1.0)),)
    errors: list[str] = []
    values = declare_all(_FakeNode({"conf_threshold": 1.5}), params, errors)  # type: ignore[arg-type]
    assert values == {"conf_threshold": 0.25}
    assert errors and "outside [0.0, 1.0]" in errors[0]
