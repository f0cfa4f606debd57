"""OpenVINO precision recipes (the thesis's, seed 002): FP16, INT8 and accuracy-aware INT8 through NNCF.

* ``openvino_fp16``: an OpenVINO IR with FP16 weights (``ov.save_model(compress_to_fp16=True)``);
  the CPU plugin decompresses them and computes in FP32 unless its precision hint says otherwise.
* ``openvino_int8``: ``nncf.quantize`` (post-training, CPU target, symmetric "performance" preset)
  calibrated on the stage's own engine inputs.
* ``openvino_int8_accuracy_aware``: ``nncf.quantize_with_accuracy_control``; its validation function
  is the task metric (``task_metric.TaskMetric``) on held-out frames, so layers go back to float
  until mAP / exact match / mIoU / MSE is within ``max_drop`` -- not until the outputs look alike.

Every IR keeps the source ONNX's ``metadata_props`` plus its derived ``ModelInfo`` in its runtime
info (``openvino_backend.IR_METADATA_KEY``), so ``OpenVinoEngine`` and ``model_precision`` read what
an ONNX copy would say.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..inference.engine import EngineError
from ..inference.model_info import onnx_info, onnx_metadata
from ..inference.openvino_backend import IR_METADATA_KEY
from .precision import AccuracyAwareReport, AccuracyStep, _drop

Feeds = dict[str, np.ndarray]
#: ``TaskMetric.of_engine``-like: (engine, validation items) -> metric
Validate = Callable[[Any, Sequence[Any]], float]


def _nncf() -> Any:
    """NNCF, imported on first use (seconds). It reports usage through openvino-telemetry unless
    opted out once per machine: ``.venv/bin/opt_in_out --opt_out``."""
    import nncf

    return nncf


def _read(onnx_in: str | Path) -> Any:
    import openvino as ov

    if not Path(onnx_in).is_file():
        raise EngineError(f"ONNX model not found: {onnx_in}")
    return ov.Core().read_model(str(onnx_in))


def _save(model: Any, onnx_in: str | Path, out: str | Path, precision: str, fp16_weights: bool) -> Path:
    """Write the IR with the source's metadata and its ``ModelInfo`` at ``precision``."""
    import openvino as ov

    metadata = {**onnx_metadata(onnx_in), **onnx_info(onnx_in).derived(precision).to_metadata()}
    for key, value in metadata.items():
        model.set_rt_info(value, [IR_METADATA_KEY, key])
    out = Path(out).with_suffix(".xml")
    out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(out), compress_to_fp16=fp16_weights)
    return out


def openvino_fp16(onnx_in: str | Path, xml_out: str | Path) -> Path:
    return _save(_read(onnx_in), onnx_in, xml_out, "fp16", fp16_weights=True)


def _quantize_options(calibration: Sequence[Feeds], ignored: Sequence[str]) -> dict[str, Any]:
    nncf = _nncf()
    return {
        "calibration_dataset": nncf.Dataset(list(calibration)),
        "preset": nncf.QuantizationPreset.PERFORMANCE,
        "target_device": nncf.TargetDevice.CPU,
        "subset_size": len(calibration),
        "ignored_scope": nncf.IgnoredScope(names=list(ignored), validate=False) if ignored else None,
    }


def openvino_int8(
    onnx_in: str | Path, xml_out: str | Path, calibration: Sequence[Feeds], ignored: Sequence[str] = ()
) -> Path:
    """NNCF post-training INT8 of the ONNX (read by OpenVINO), ``ignored`` nodes kept in float."""
    if not calibration:
        raise EngineError("no calibration data: the image source was empty")
    quantized = _nncf().quantize(_read(onnx_in), **_quantize_options(calibration, ignored))
    return _save(quantized, onnx_in, xml_out, "int8", fp16_weights=False)


class _RevertedLog(logging.Handler):
    """The operation names NNCF's accuracy restorer has in float now, from its log: one group per
    restoration round; a round that made the metric worse is rolled back (NNCF then logs that it
    re-ranks the remaining groups, and only then), so its group leaves the list."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._groups: list[list[str]] = []

    @property
    def reverted(self) -> list[str]:
        return [name for group in self._groups for name in group]

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg.startswith("Reverted"):  # one per restoration round (the closing summary repeats them)
            self._groups.append([n.strip() for n in re.findall(r"\t(.+)", msg)])
        elif msg.startswith("Re-calculating ranking scores") and self._groups:
            self._groups.pop()


def openvino_int8_accuracy_aware(
    onnx_in: str | Path,
    xml_out: str | Path,
    calibration: Sequence[Feeds],
    validation: Sequence[Any],
    evaluate: Validate,
    *,
    max_drop: float = 0.01,
    higher_is_better: bool = True,
    max_steps: int = 20,
    ignored: Sequence[str] = (),
    on_step: Callable[[AccuracyStep], None] | None = None,
) -> AccuracyAwareReport:
    """``nncf.quantize_with_accuracy_control`` judged by ``evaluate(engine, items)`` (relative drop).

    The report's steps: the FP32 reference, the fully quantized model, then one step per restoration
    round with the layers in float at that round; ``ranking``: the layers in float at the end (a
    round that made the metric worse is rolled back by NNCF and leaves the list).
    """
    from ..inference.openvino_backend import CompiledModelEngine

    nncf = _nncf()
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    metadata = onnx_metadata(onnx_in)
    sign = 1.0 if higher_is_better else -1.0  # NNCF maximises its metric
    log = _RevertedLog()
    values: list[float] = []
    report = AccuracyAwareReport(float("nan"), higher_is_better, max_drop, True, output=str(xml_out))
    started = time.monotonic()

    def validate(compiled: Any, items: Any) -> float:
        items = list(items)
        engine = CompiledModelEngine(compiled, Path(onnx_in).with_suffix(".candidate.xml"), metadata)
        value = float(evaluate(engine, items))
        if len(items) == len(validation):  # a full-set validation: a step of the report
            _record(report, values, value, log.reverted, started, on_step)
        return sign * value

    nncf_log = logging.getLogger("nncf")
    # NNCF's own INFO lines and progress bars would bury the steps; our handler still sees them
    quiet = [(h, h.level) for h in nncf_log.handlers]
    for h, _ in quiet:
        h.setLevel(logging.WARNING)
    nncf_log.addHandler(log)
    try:
        quantized = nncf.quantize_with_accuracy_control(
            _read(onnx_in),
            validation_dataset=nncf.Dataset(list(validation)),
            validation_fn=validate,
            max_drop=max_drop,
            drop_type=nncf.DropType.RELATIVE,
            advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                max_num_iterations=max_steps
            ),
            **_quantize_options(calibration, ignored),
        )
    finally:
        nncf_log.removeHandler(log)
        for h, level in quiet:
            h.setLevel(level)
    report.ranking = [(name, float("nan")) for name in log.reverted]
    report.met = bool(report.steps) and report.steps[-1].relative_drop <= max_drop
    report.output = str(_save(quantized, onnx_in, xml_out, "int8", fp16_weights=False))
    return report


def _record(
    report: AccuracyAwareReport,
    values: list[float],
    value: float,
    reverted: list[str],
    started: float,
    on_step: Callable[[AccuracyStep], None] | None,
) -> None:
    """The first full validation is the FP32 reference; every later one a quantized step."""
    values.append(value)
    if len(values) == 1:
        report.reference_metric = value
        return
    drop, rel = _drop(report.reference_metric, value, report.higher_is_better)
    step = AccuracyStep(
        len(values) - 2, list(reverted), value, drop, rel, round(time.monotonic() - started, 2)
    )
    report.steps.append(step)
    if on_step is not None:
        on_step(step)
