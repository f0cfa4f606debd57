"""Precision recipes on the ONNX itself, verified with ONNX Runtime (and what TensorRT 11 needs).

* ``to_fp16``: an FP16 copy with FP32 inputs/outputs (onnxconverter-common ``float16``).
* ``quantize_int8``: explicit INT8 as Q/DQ nodes from static calibration (ONNX Runtime
  ``quantize_static``, QDQ, per-channel weights). ``target="tensorrt"`` makes symmetric signed INT8
  activations (what TensorRT's Q/DQ path accepts); ``target="cpu"`` uses unsigned activations, the
  fast U8S8 kernels of ONNX Runtime on x86. Calibration images come from a folder
  (``images_from_folder``) or a rosbag2 topic (``images_from_bag``) through a ``preprocess`` callable.
* ``quantize_int8_accuracy_aware``: the accuracy-aware loop of OpenVINO's POT (see the thesis in the
  seeds): quantize everything, measure the task metric (``task_metric``: mAP, exact match, mIoU,
  MSE on held-out frames), and while the drop exceeds the limit keep the nodes whose INT8 costs the
  metric most in float (``nodes_to_exclude``), one more per step, reporting each. Nodes are ranked
  once by the metric gained when each alone is reverted to float in the Q/DQ graph.

  Why this loop is not ``nncf.quantize_with_accuracy_control`` on the ONNX (NNCF does that for the
  OpenVINO recipes, ``nncf_recipes``): NNCF's ONNX Q/DQ is not what TensorRT takes -- the detector
  came out with UINT8 activations on all 29 QuantizeLinear nodes and Q/DQ on Add/Reshape/Resize/Slice
  inputs, while TensorRT needs signed INT8 on the inputs of weighted layers only (``trt_features``);
  on ONNX Runtime it was no faster either (detector, 1 thread, AVX2: 18.5 ms vs 17.5 ms, p10).

NVIDIA ModelOpt (``modelopt.onnx.quantization``) is used by ``quantize_int8(..., method="modelopt")``
only where it is importable; it is never required.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..inference.engine import EngineError
from ..inference.engine_sidecar import engine_metadata
from ..inference.model_info import METADATA_KEY, onnx_info, onnx_metadata, write_info
from ..inference.openvino_backend import ir_metadata
from ..io.bags import BagReadError
from ..io.bags import images_from_bag as bag_images

log = logging.getLogger(__name__)

Feeds = dict[str, np.ndarray]
Preprocess = Callable[[np.ndarray], Feeds]
#: Quantizable op types whose inputs get Q/DQ (the compute-heavy ones TensorRT runs in INT8).
DEFAULT_OP_TYPES = ("Conv", "ConvTranspose", "MatMul", "Gemm")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def _load(path: str | Path) -> Any:
    import onnx  # lazy: ~1.7 s to import

    path = Path(path)
    if not path.is_file():
        raise EngineError(f"ONNX model not found: {path}")
    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise EngineError(f"cannot read ONNX model {path}: {exc}") from exc


# -- FP16 -----------------------------------------------------------------------------------------


def to_fp16(onnx_in: str | Path, onnx_out: str | Path, op_block_list: Sequence[str] | None = None) -> Path:
    """FP16 weights and compute, FP32 inputs/outputs kept (``keep_io_types``) so callers are unchanged."""
    import onnx  # lazy: ~1.7 s to import
    from onnxconverter_common import float16  # lazy: ~2 s to import, for FP16 copies alone

    model = _separate_consumed_outputs(_load(onnx_in))
    kwargs: dict[str, Any] = {"keep_io_types": True}
    if op_block_list is not None:
        kwargs["op_block_list"] = list(op_block_list)
    fp16 = float16.convert_float_to_float16(model, **kwargs)
    write_info(fp16, onnx_info(onnx_in).derived("fp16"))
    out = Path(onnx_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(fp16, str(out))
    return out


def stamp_copy(onnx_in: str | Path, onnx_out: str | Path, precision: str) -> None:
    """Write the source's ``ModelInfo`` (sidecar labels included) at ``precision`` into a copy written
    by another tool, so the copy alone knows its labels, charset and decoder."""
    import onnx  # lazy: ~1.7 s to import

    info = onnx_info(onnx_in).derived(precision)
    model = onnx.load(str(onnx_out))
    write_info(model, info)
    onnx.save(model, str(onnx_out))


def model_record(path: str | Path) -> dict[str, Any] | None:
    """The ``model_info`` record a model carries: an engine's sidecar, an OpenVINO IR's metadata, or an
    ONNX's ``model_info`` (a derived copy's) else what its own metadata and sidecar files resolve to.
    None for what is not a model file (a live pipeline)."""
    path = Path(path)
    if not path.is_file():
        return None
    if path.suffix in (".engine", ".plan", ".trt"):
        record = engine_metadata(path).get(METADATA_KEY)
        return json.loads(record) if record else None
    if path.suffix == ".xml":  # an OpenVINO IR of modelops.nncf_recipes
        record = ir_metadata(path).get(METADATA_KEY)
        return json.loads(record) if record else None
    record = onnx_metadata(path).get(METADATA_KEY)
    if record:
        return dict(json.loads(record))
    info = onnx_info(path).as_dict()
    if not info.get("precision"):  # an original model says nothing of it: its graph does
        info["precision"] = model_precision(path)
        info["sources"]["precision"] = "the graph's weights and Q/DQ nodes"
    return info


def model_precision(path: str | Path) -> str:
    """A model's precision from what it is, not its name: the ``model_info`` a derived copy or engine
    sidecar carries, else the graph (Q/DQ nodes -> int8, float16 weights -> fp16, else fp32)."""
    path = Path(path)
    if path.suffix in (".engine", ".plan", ".trt", ".xml"):  # they carry the record or nothing
        return str((model_record(path) or {}).get("precision") or "unknown")
    derived = onnx_metadata(path).get(METADATA_KEY)
    if derived and json.loads(derived).get("precision"):
        return str(json.loads(derived)["precision"])
    model = _load(path)
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        return "int8"
    fp16 = 10  # onnx.TensorProto.FLOAT16
    return "fp16" if any(t.data_type == fp16 for t in model.graph.initializer) else "fp32"


def _separate_consumed_outputs(model: Any) -> Any:
    """Give each graph output that other nodes also read its own Identity.

    ``convert_float_to_float16(keep_io_types=True)`` otherwise feeds the FP32-cast output to the
    internal consumers and writes an invalid graph (a type mismatch ONNX Runtime refuses to load).
    """
    from onnx import helper  # lazy: ~1.7 s to import

    outputs = {o.name for o in model.graph.output}
    consumed = {i for n in model.graph.node for i in n.input} & outputs
    for name in sorted(consumed):
        internal = f"{name}__internal"
        for node in model.graph.node:
            node.output[:] = [internal if o == name else o for o in node.output]
            node.input[:] = [internal if i == name else i for i in node.input]
        model.graph.node.append(helper.make_node("Identity", [internal], [name], name=f"{name}__output"))
    return model


# -- calibration data -----------------------------------------------------------------------------


def images_from_folder(folder: str | Path, limit: int = 0) -> Iterator[np.ndarray]:
    """BGR images of a folder (recursively, sorted, deterministic), at most ``limit`` (0 = all)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EngineError(f"calibration folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise EngineError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    for p in files[: limit or None]:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise EngineError(f"cannot read calibration image {p}")
        yield img


def images_from_bag(
    bag: str | Path, topic: str = "/camera/image_raw", limit: int = 0
) -> Iterator[np.ndarray]:
    """BGR images of a ``sensor_msgs/Image`` topic (``io.bags``); a bag that cannot give them: EngineError."""
    try:
        yield from bag_images(bag, topic, limit)
    except (OSError, ValueError, BagReadError) as exc:
        raise EngineError(f"calibration bag: {exc}") from exc


def resize_preprocess(input_name: str, width: int, height: int, scale: float = 1 / 255.0) -> Preprocess:
    """Plain resize -> RGB -> NCHW float32 * ``scale``; stages pass their own letterbox/normalize."""

    def pre(bgr: np.ndarray) -> Feeds:
        rgb = cv2.cvtColor(
            cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB
        )
        return {input_name: (rgb.transpose(2, 0, 1)[None].astype(np.float32) * scale)}

    return pre


class FeedsReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over a list of feed dicts (rewindable)."""

    def __init__(self, feeds: Sequence[Feeds]) -> None:
        self.feeds = list(feeds)
        self._it = iter(self.feeds)

    def get_next(self) -> Feeds | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self.feeds)

    def __len__(self) -> int:
        return len(self.feeds)


def calibration_feeds(images: Iterable[np.ndarray], preprocess: Preprocess) -> list[Feeds]:
    feeds = [preprocess(img) for img in images]
    if not feeds:
        raise EngineError("no calibration data: the image source was empty")
    return feeds


# -- INT8 -----------------------------------------------------------------------------------------


def quantize_int8(
    onnx_in: str | Path,
    onnx_out: str | Path,
    calibration: Sequence[Feeds] | Any,
    *,
    target: str = "tensorrt",
    per_channel: bool = True,
    nodes_to_exclude: Sequence[str] = (),
    op_types: Sequence[str] | None = None,
    calibrate_method: str = "minmax",
    method: str = "onnxruntime",
    float_stem: bool = True,
    float_tail: bool = True,
) -> Path:
    """Static INT8 Q/DQ quantization. ``calibration``: feed dicts or a CalibrationDataReader.

    ``op_types`` None picks per target: TensorRT gets Q/DQ on the inputs of its INT8 layers only
    (``DEFAULT_OP_TYPES``; it fuses the rest itself), ONNX Runtime CPU on every op it has a QLinear
    kernel for, so activations stay INT8 between convolutions (QLinearSigmoid/Mul/Add/Concat...).

    ``float_stem`` keeps the first convolution on the image (3-4 input channels) and its activation
    in float: INT8 gains nothing on 3 channels (measured slower on ONNX Runtime's CPU kernels), and
    that layer sees the raw image range, the usual first-layer accuracy loss.
    ``float_tail`` keeps the post-processing tail in float: the nodes with no Conv/MatMul/Gemm
    downstream, and those writing graph outputs. There INT8 saves nothing (small element-wise work)
    and costs a lot: decoded box coordinates in pixels lose ~2 px per INT8 step, and one scale over a
    YOLO ``output0`` (pixels 0..640 concatenated with 0..1 scores) rounds every score to 0.
    """
    if method == "modelopt":
        return _quantize_modelopt(onnx_in, onnx_out, calibration)
    # lazy: ~2 s to import, for INT8 copies alone
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = _load(onnx_in)  # clear error for a missing/corrupt file before ORT's own
    exclude = list(nodes_to_exclude)
    if float_stem:
        exclude += [n for n in stem_nodes(model) if n not in exclude]
    if float_tail:
        exclude += [n for n in tail_nodes(model) if n not in exclude]
    if target not in ("tensorrt", "cpu"):
        raise EngineError(f"quantization target '{target}' unknown; choose tensorrt or cpu")
    reader = FeedsReader(calibration) if isinstance(calibration, (list, tuple)) else calibration
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    if calibrate_method not in methods:
        raise EngineError(f"calibrate_method '{calibrate_method}' unknown; choose {sorted(methods)}")
    symmetric = for_tensorrt = target == "tensorrt"
    out = Path(onnx_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    quantize_static(
        str(onnx_in),
        str(out),
        reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=_op_types(op_types, target),
        per_channel=per_channel,
        activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=exclude,
        calibrate_method=methods[calibrate_method],
        extra_options={
            "ActivationSymmetric": symmetric,
            "WeightSymmetric": True,
            # TensorRT's Q/DQ rules (trt_features, "ONNX limits"): it dequantizes only INT8/FP8/INT4 (ORT's
            # default int32 bias DQ is INVALID_NODE) and folds a float bias into the INT8 layer itself;
            # Q/DQ go on the inputs of weighted layers, not their outputs, so it can fuse the activation
            "QuantizeBias": not for_tensorrt,
            "OpTypesToExcludeOutputQuantization": list(DEFAULT_OP_TYPES) if for_tensorrt else [],
        },
    )
    stamp_copy(onnx_in, out, "int8")
    return out


def _op_types(op_types: Sequence[str] | None, target: str) -> list[str] | None:
    if op_types is not None:
        return list(op_types) or None
    return list(DEFAULT_OP_TYPES) if target == "tensorrt" else None


def _quantize_modelopt(onnx_in: str | Path, onnx_out: str | Path, calibration: Sequence[Feeds]) -> Path:
    try:
        from modelopt.onnx.quantization import quantize as mo_quantize  # lazy: optional (NVIDIA ModelOpt)
    except ImportError:
        raise EngineError("method='modelopt' needs nvidia-modelopt[onnx] (not installed)") from None
    feeds = list(calibration)
    data = {k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}
    mo_quantize(
        onnx_path=str(onnx_in), quantize_mode="int8", calibration_data=data, output_path=str(onnx_out)
    )
    stamp_copy(onnx_in, onnx_out, "int8")
    return Path(onnx_out)


def output_nodes(model: Any) -> list[str]:
    """Names of the nodes that write a graph output."""
    outputs = {o.name for o in model.graph.output}
    return [n.name for n in model.graph.node if n.name and outputs.intersection(n.output)]


def tail_nodes(model: Any, compute: Sequence[str] = DEFAULT_OP_TYPES) -> list[str]:
    """Nodes writing graph outputs plus every non-compute node with no compute node downstream."""
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    feeds_compute: dict[str, bool] = {}

    def reaches(node: Any) -> bool:  # is a compute op reachable from this node's outputs?
        if node.name in feeds_compute:
            return feeds_compute[node.name]
        feeds_compute[node.name] = False  # cycle guard (ONNX graphs are acyclic anyway)
        hit = any(c.op_type in compute or reaches(c) for o in node.output for c in consumers.get(o, []))
        feeds_compute[node.name] = hit
        return hit

    tail = [n.name for n in model.graph.node if n.name and n.op_type not in compute and not reaches(n)]
    return tail + [n for n in output_nodes(model) if n not in tail]


def stem_nodes(model: Any, max_nodes: int = 8) -> list[str]:
    """Names of the first Conv on a graph input with <= 4 input channels, of the nodes before it and
    of its activation up to the next Conv; empty when the model does not start that way."""
    from onnx import numpy_helper  # lazy: ~1.7 s to import

    inits = {t.name: t for t in model.graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    found: list[str] = []
    # (tensor, passed the first conv?) breadth-first from the graph inputs
    queue = [(i.name, False) for i in model.graph.input if i.name not in inits]
    seen: set[str] = set()
    stem_conv = False
    while queue and len(found) <= max_nodes:
        tensor, after = queue.pop(0)
        for node in consumers.get(tensor, []):
            if node.name in seen or not node.name:
                continue
            is_conv = node.op_type == "Conv"
            if is_conv and after:
                continue  # the next layer: stop
            if is_conv:
                w = inits.get(node.input[1])
                if w is None or numpy_helper.to_array(w).shape[1] > 4:
                    return []
                stem_conv = True
            seen.add(node.name)
            found.append(node.name)
            queue += [(o, after or is_conv) for o in node.output]
    return found if stem_conv and len(found) <= max_nodes else []


# -- accuracy-aware INT8 --------------------------------------------------------------------------


@dataclass
class AccuracyStep:
    step: int
    excluded: list[str]
    metric: float
    drop: float
    relative_drop: float
    seconds: float


@dataclass
class AccuracyAwareReport:
    reference_metric: float
    higher_is_better: bool
    max_drop: float
    relative: bool
    ranking: list[tuple[str, float]] = field(default_factory=list)
    steps: list[AccuracyStep] = field(default_factory=list)
    output: str = ""
    met: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def table(self) -> str:
        lines = [
            f"reference {self.reference_metric:.4f}; limit {self.max_drop:g}{' relative' if self.relative else ''}",
            "step  excluded  metric    drop      rel.drop",
        ]
        lines += [
            f"{s.step:4d}  {len(s.excluded):8d}  {s.metric:.4f}  {s.drop:+.4f}  {s.relative_drop:+.2%}"
            for s in self.steps
        ]
        return "\n".join(lines)


def _drop(reference: float, value: float, higher_is_better: bool) -> tuple[float, float]:
    drop = (reference - value) if higher_is_better else (value - reference)
    return drop, drop / abs(reference) if reference else drop


def quantize_int8_accuracy_aware(
    onnx_in: str | Path,
    onnx_out: str | Path,
    calibration: Sequence[Feeds],
    evaluate: Callable[[Path], float],
    *,
    max_drop: float = 0.01,
    relative: bool = True,
    higher_is_better: bool = True,
    max_steps: int = 20,
    target: str = "tensorrt",
    per_channel: bool = True,
    op_types: Sequence[str] | None = None,
    calibrate_method: str = "minmax",
    on_step: Callable[[AccuracyStep], None] | None = None,
    float_stem: bool = True,
    float_tail: bool = True,
) -> AccuracyAwareReport:
    """INT8 Q/DQ within ``max_drop`` of the FP32 ``evaluate(onnx_path)`` metric (see module docstring).

    ``evaluate`` runs a held-out validation set (not ``calibration``) through the model at a path and
    returns the task metric; the quantized nodes (TensorRT target: Conv/MatMul/Gemm; CPU target: every
    quantized op) are ranked by the metric gained when each alone is reverted to float (one
    ``evaluate`` per node: the thesis's layer-wise ranking).
    The best model found is written to ``onnx_out`` even when the limit is not met (``report.met``).
    """
    onnx_in, onnx_out = Path(onnx_in), Path(onnx_out)
    reference = float(evaluate(onnx_in))
    report = AccuracyAwareReport(reference, higher_is_better, max_drop, relative, output=str(onnx_out))
    with tempfile.TemporaryDirectory(prefix="trt_perception_aaq_") as tmp_dir:
        tmp = Path(tmp_dir)
        import onnx  # lazy: ~1.7 s to import

        quantized = quantize_int8(
            onnx_in,
            tmp / "step0.onnx",
            calibration,
            target=target,
            per_channel=per_channel,
            op_types=op_types,
            calibrate_method=calibrate_method,
            float_stem=float_stem,
            float_tail=float_tail,
        )
        # Later steps revert nodes in this Q/DQ graph exactly as the ranking measured them (their input
        # and output Q/DQ bypassed); re-quantizing with nodes_to_exclude would still quantize the
        # tensors around an excluded node for its neighbours -- measured: the detector's Softplus
        # reverted gained 1.8 mAP points, excluded it gained none.
        floats = {t.name: t for t in _load(onnx_in).graph.initializer}
        model = _load(quantized)
        excluded: list[str] = []
        ranking: list[str] | None = None
        best: tuple[float, Path] | None = None
        for step in range(max_steps + 1):
            start = time.monotonic()
            candidate = tmp / f"step{step}.onnx"
            if step:
                model = _revert_node(model, excluded[-1], floats) or model
                onnx.save(model, str(candidate))
            value = float(evaluate(candidate))
            drop, rel = _drop(reference, value, higher_is_better)
            s = AccuracyStep(step, list(excluded), value, drop, rel, round(time.monotonic() - start, 2))
            report.steps.append(s)
            log.info(
                "accuracy-aware step %d: %d excluded, metric %.4f, drop %.4f (%.2f%%)",
                step,
                len(excluded),
                value,
                drop,
                100 * rel,
            )
            if on_step is not None:
                on_step(s)
            if best is None or drop < best[0]:
                best = (drop, candidate)
            if (rel if relative else drop) <= max_drop:
                report.met = True
                best = (drop, candidate)
                break
            if ranking is None:
                scores = rank_nodes_by_metric(
                    onnx_in, candidate, evaluate, value, higher_is_better, tmp, _op_types(op_types, target)
                )
                report.ranking = scores
                ranking = [name for name, _ in scores]
            remaining = [n for n in ranking if n not in excluded]
            if not remaining:
                break
            excluded.append(remaining[0])
        assert best is not None
        onnx_out.parent.mkdir(parents=True, exist_ok=True)
        onnx_out.write_bytes(best[1].read_bytes())
    return report


def rank_nodes_by_metric(
    fp32_path: Path,
    qdq_path: Path,
    evaluate: Callable[[Path], float],
    base_value: float,
    higher_is_better: bool,
    work_dir: Path,
    op_types: Sequence[str] | None = DEFAULT_OP_TYPES,
) -> list[tuple[str, float]]:
    """Quantized nodes of ``op_types`` (None: every node with a quantized input or output, the CPU
    recipe's Add/Concat/Resize too) by the metric gained when each alone runs in float, best first."""
    import onnx  # lazy: ~1.7 s to import

    floats = {t.name: t for t in _load(fp32_path).graph.initializer}
    qdq = _load(qdq_path)
    scores = []
    for node in qdq.graph.node:
        if not node.name or node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if op_types is not None and node.op_type not in op_types:
            continue
        reverted = _revert_node(qdq, node.name, floats)
        if reverted is None:
            continue
        path = work_dir / "ranking.onnx"
        onnx.save(reverted, str(path))
        value = float(evaluate(path))
        gain = value - base_value if higher_is_better else base_value - value
        log.info("ranking %s: %.4f (%+.4f)", node.name, value, gain)
        scores.append((node.name, gain))
    scores.sort(key=lambda kv: -kv[1])
    return scores


def _revert_node(qdq: Any, name: str, floats: dict[str, Any]) -> Any | None:
    """A copy of ``qdq`` where node ``name`` computes in float: its input Q/DQ pairs bypassed (float
    weights from the FP32 model) and its output Q/DQ made Identity; None when nothing was quantized."""
    import onnx  # lazy: ~1.7 s to import

    model = onnx.ModelProto()
    model.CopyFrom(qdq)
    producers = {o: n for n in model.graph.node for o in n.output}
    target = next(n for n in model.graph.node if n.name == name)
    changed = False
    for i, inp in enumerate(target.input):
        dq = producers.get(inp)
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        q = producers.get(dq.input[0])
        if q is not None and q.op_type == "QuantizeLinear":
            target.input[i] = q.input[0]  # activation: use the float tensor
            changed = True
            continue
        original = dq.input[0].removesuffix("_quantized")
        if original in floats:  # weight/bias: the FP32 model's initializer, under a fresh name
            fresh = f"{original}__float"
            if fresh not in {t.name for t in model.graph.initializer}:
                init = model.graph.initializer.add()
                init.CopyFrom(floats[original])
                init.name = fresh
            target.input[i] = fresh
            changed = True
    # Its outputs too: a Q -> DQ pair after it becomes Identity, so consumers read the float tensor.
    for out in target.output:
        for q in [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == out]:
            for dq in [
                n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == q.output[0]
            ]:
                dq.op_type = "Identity"
                dq.input[:] = [out]
                del dq.attribute[:]
                changed = True
    return model if changed else None
