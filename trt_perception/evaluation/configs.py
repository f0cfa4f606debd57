"""Building the report's columns: configurations from model paths or node parameter files, and the
FP16 / INT8 copies of an ONNX model made with the engine layer's precision recipes.

A node YAML (``config/detector.yaml``) is accepted as a configuration so the evaluated settings are
exactly the deployed ones (decoder, pre-processing, input size); keys the stage does not know (QoS,
topics, diagnostics) are ignored, and the detection confidence floor stays the evaluation's (1e-2),
not the deployment threshold: a 0.25 threshold would drop low-confidence true positives from mAP.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..inference.model_info import METADATA_KEY, onnx_metadata
from ..inference.openvino_backend import ir_metadata
from ..modelops import nncf_recipes
from ..modelops.engine_cache import BuildRecipe
from ..modelops.precision import model_precision, quantize_int8, to_fp16
from ..stages.detector import DetectorConfig
from ..stages.pilot import PilotConfig
from ..stages.plate_reader import PlateReaderConfig
from ..stages.segmenter import SegmenterConfig
from .tasks import EvalConfig

PRECISIONS = ("fp32", "fp16", "int8")
#: Parameters of a node file that are the evaluation's business, not the configuration's.
_EVALUATION_OWNED = {"conf_threshold", "model", "backend", "precision"}


def read_node_params(path: str | Path) -> dict[str, Any]:
    """``ros__parameters`` of a ROS 2 parameter file (first node entry), or a plain mapping."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping, got {type(data).__name__}")
    for value in data.values():
        if isinstance(value, dict) and "ros__parameters" in value:
            return dict(value["ros__parameters"])
    return data


def config_from_file(path: str | Path, stage_fields: Iterable[str], name: str | None = None) -> EvalConfig:
    """An ``EvalConfig`` from a node parameter file; stage options are the keys the stage has."""
    params = read_node_params(path)
    if "model" not in params:
        raise ValueError(f"{path}: no 'model' parameter")
    fields = set(stage_fields)
    options = {
        k: (tuple(v) if isinstance(v, list) and k.endswith("_size") else v)
        for k, v in params.items()
        if k in fields and k not in _EVALUATION_OWNED
    }
    model = Path(str(params["model"]))
    if not model.is_absolute() and not model.exists():
        model = Path(path).resolve().parent.parent / model  # relative to the package root of config/
    backend = str(params.get("backend", "auto"))
    precision = _precision_of(model, str(params.get("precision", "fp32")))
    return EvalConfig(name or Path(path).stem, model, backend, precision, options)


def _precision_of(model: Path, default: str) -> str:
    """What the model is (its ``model_info`` metadata or graph, an engine's cache sidecar), never its
    file name; ``default`` only for what cannot be read (a missing file, a bare TensorRT plan)."""
    if not model.is_file():
        return default
    found = model_precision(model)
    return default if found == "unknown" else found


def parse_model_arg(arg: str, backend: str) -> EvalConfig:
    """``path`` or ``name=path``; the name defaults to ``<stem> <backend> <precision>``."""
    name, _, path = arg.rpartition("=") if "=" in arg else ("", "", arg)
    model = Path(path)
    precision = _precision_of(model, "fp32")
    be = (
        backend
        if backend != "auto"
        else {".engine": "tensorrt", ".plan": "tensorrt", ".xml": "openvino"}.get(model.suffix, "onnxruntime")
    )
    return EvalConfig(name or f"{model.stem} {be}", model, backend, precision)


def stage_fields(task: str) -> set[str]:
    """Field names of the stage config a task builds (for filtering parameter files)."""
    configs: dict[str, type] = {
        "detection": DetectorConfig,
        "plates": PlateReaderConfig,
        "segmentation": SegmenterConfig,
    }
    cls = configs.get(task, PilotConfig)
    return {f.name for f in dataclasses.fields(cls)}


def derive_precisions(
    base: EvalConfig,
    precisions: Sequence[str],
    out_dir: Path,
    calibration: Callable[[], list[dict[str, np.ndarray]]],
    int8_target: str = "tensorrt",
) -> list[EvalConfig]:
    """``base`` (an FP32 ONNX) plus its FP16 / INT8 copies, made once into ``out_dir``: ONNX (FP16,
    Q/DQ) for ONNX Runtime and TensorRT, OpenVINO IRs through NNCF when ``base.backend`` is openvino.

    ``calibration`` is called only when an INT8 copy must be made (it runs the stage's own
    pre-processing on sample frames). Engines (.engine/.plan) are taken as they are.
    """
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise ValueError(f"unknown precision(s) {unknown}; choose from {', '.join(PRECISIONS)}")
    if base.model.suffix != ".onnx":
        return [base]
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = base.model.stem
    label = base.name.rsplit(" fp32", 1)[0]
    configs: list[EvalConfig] = []
    for p in precisions:
        if p == "fp32":
            configs.append(dataclasses.replace(base, name=f"{label} fp32", precision="fp32"))
            continue
        path = out_dir / f"{stem}_{p}{'.xml' if base.backend == 'openvino' else '.onnx'}"
        if not path.is_file() or path.stat().st_mtime < base.model.stat().st_mtime or _unstamped(path):
            with warnings.catch_warnings():  # onnxconverter-common warns once per clamped tiny weight
                warnings.simplefilter("ignore", UserWarning)
                _make_copy(base.model, path, p, calibration, int8_target)
        configs.append(dataclasses.replace(base, name=f"{label} {p}", model=path, precision=p))
    return configs


def _make_copy(
    model: Path,
    path: Path,
    precision: str,
    calibration: Callable[[], list[dict[str, np.ndarray]]],
    int8_target: str,
) -> None:
    if path.suffix == ".xml":
        if precision == "fp16":
            nncf_recipes.openvino_fp16(model, path)
        else:
            nncf_recipes.openvino_int8(model, path, calibration())
    elif precision == "fp16":
        to_fp16(model, path)
    else:
        quantize_int8(model, path, calibration(), target=int8_target)


def _unstamped(copy: Path) -> bool:
    """A copy made before copies carried their ``ModelInfo`` (labels, charset): made again."""
    return METADATA_KEY not in (ir_metadata(copy) if copy.suffix == ".xml" else onnx_metadata(copy))


def tensorrt_config(cfg: EvalConfig, fp32_onnx: Path, cache_dir: Path) -> EvalConfig:
    """A TensorRT engine of ``cfg`` at its precision, built (or reused) in ``cache_dir``.

    FP32/FP16 engines are built from the FP32 ONNX (the builder makes the FP16 copy TensorRT 11
    needs); INT8 from the Q/DQ ONNX of ``cfg`` (explicit quantization works on TensorRT 8.5-11).
    """
    from ..modelops import tensorrt_build as tb  # lazy: imports TensorRT, absent on CPU-only machines

    source = cfg.model if cfg.precision == "int8" else fp32_onnx
    result = tb.ensure_engine(source, BuildRecipe(cfg.precision), cache_dir)
    label = cfg.name.replace("onnxruntime", "").replace(f" {cfg.precision}", "").strip()
    return dataclasses.replace(
        cfg, name=f"{label} tensorrt {cfg.precision}", model=result.path, backend="tensorrt"
    )
