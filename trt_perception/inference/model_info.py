"""What a model is, read once and carried with it: ``ModelInfo`` (ROS-free).

Facts (task, labels, character set and blank, decoder, pre-processing preset, input layout and size,
output names, precision, source hash) are read in this order of trust:

1. explicit parameters (a node's or stage config's non-empty values);
2. the model's own metadata: the ``model_info`` JSON this package writes into every derived artifact,
   then the keys of the package's exporters (``tools/train_*.py``: ``names``, ``character``,
   ``blank_index``, ``decoder``, ``classes``), Ultralytics (``names`` as a Python dict string,
   ``imgsz``, ``stride``, ``task``) and PaddleOCR (``character``);
3. sidecar files next to the model (``<stem>_labels.txt``; ``<stem>_charset.txt`` /
   ``plate_charset.txt`` for text recognizers);
4. a known family's native size for a dynamic input (PaddleOCR recognizers: 3x48x320).

Where each fact came from is recorded (``info.source("labels")``). A parameter that contradicts the
model's metadata, a YOLOX decoder with a non-YOLOX preset (or the reverse) raise ``ModelInfoError``
naming both values and sources. A weaker source that disagrees with a stronger one, or a required
fact nothing provides, becomes a warning the stage exposes (``stage.warnings``) for ``/diagnostics``.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .tensors import EngineError, TensorSpec

#: Metadata key of the JSON written into FP16/INT8 copies, engine sidecars and evaluation copies.
METADATA_KEY = "model_info"
PARAMETER, METADATA, SIDECAR, FAMILY, TENSORS = "parameter", "model metadata", "sidecar", "family", "tensors"
#: Pre-processing presets a decoder's exporter implies (``vision/preprocess.py`` names).
DECODER_PRESETS = {"yolox": "yolox", "ssd_tf": "ssd_tf"}
#: Presets that metadata's ``preprocess`` may name (other values are free-text descriptions).
PRESET_NAMES = ("yolo", "yolox", "ssd_tf", "imagenet", "pilotnet")
#: PaddleOCR's recognizer input (``rec_image_shape`` "3, 48, 320" since PP-OCRv3), (width, height).
PADDLEOCR_REC_SIZE = (320, 48)
TEXT_DECODERS = ("ctc", "heads")


class ModelInfoError(ValueError):
    """Two sources disagree on a fact, or facts contradict each other; the message names both."""


@dataclass(frozen=True)
class ModelInfo:
    """What a model is. Empty values mean "unknown"; ``sources`` maps each known fact to its origin."""

    task: str = ""
    labels: tuple[str, ...] = ()
    #: Characters as listed (one per class, blank NOT included); see ``vision/text.py``.
    charset: tuple[str, ...] = ()
    blank_index: int = 0
    decoder: str = ""
    preprocess: str = ""
    input_layout: str = ""
    #: (width, height) of the network input: static dims, else the model's native size for dynamic ones.
    input_size: tuple[int, int] = (0, 0)
    outputs: tuple[str, ...] = ()
    precision: str = ""
    source_sha256: str = ""
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def source(self, fact: str) -> str:
        return self.sources.get(fact, "nowhere")

    def describe(self, fact: str) -> str:
        """``decoder 'heads' (model metadata 'decoder')`` for error messages."""
        value = getattr(self, fact)
        shown = f"{len(value)} entries" if isinstance(value, tuple) and len(value) > 8 else repr(value)
        return f"{fact} {shown} ({self.source(fact)})"

    def as_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "warnings"}
        d["sources"] = dict(self.sources)
        return json.loads(json.dumps(d))  # tuples -> lists, as they read back

    def to_metadata(self) -> dict[str, str]:
        """Metadata for a derived artifact: the whole record under ``model_info`` (read back first)."""
        return {METADATA_KEY: json.dumps(self.as_dict())}

    def derived(self, precision: str) -> ModelInfo:
        """This model's info for a copy at ``precision`` (FP16/INT8 copies, engines)."""
        sources = {**self.sources, "precision": "derived copy"}
        return dataclasses.replace(self, precision=precision, sources=sources)


# -- reading metadata --------------------------------------------------------------------------------


def parse_names(text: str) -> list[str]:
    """Class names from JSON or a Python literal: a list, or a dict id -> name (Ultralytics
    ``"{0: 'person', 1: 'bicycle'}"``); a dict must number its classes 0..N-1."""
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return [s.strip() for s in text.split(",") if s.strip()]
    if isinstance(value, dict):
        ids = sorted(int(k) for k in value)
        if ids != list(range(len(ids))):
            raise ModelInfoError(f"class names {text[:80]!r}: ids must be 0..N-1, got {ids[:10]}")
        return [str(value[k] if k in value else value[str(k)]) for k in ids]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise ModelInfoError(f"class names {text[:80]!r} are neither a list nor a dict")


def _lines(text: str) -> tuple[str, ...]:
    """A character or label list: one per line, only line endings stripped (a space is a character)."""
    items = [line.rstrip("\r") for line in text.split("\n")]
    if items and items[-1] == "":
        items.pop()
    return tuple(items)


def _read_lines(path: Path) -> tuple[str, ...]:
    try:
        return _lines(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ModelInfoError(f"cannot read {path}: {exc}") from exc


def _imgsz(text: str) -> tuple[int, int]:
    """Ultralytics ``imgsz``: ``[h, w]`` or one int -> (width, height)."""
    value = ast.literal_eval(text)
    if isinstance(value, int):
        return value, value
    h, w = (int(v) for v in value)
    return w, h


def _metadata_facts(meta: Mapping[str, str]) -> list[tuple[str, Any, str]]:
    """(fact, value, source) the metadata provides, our own record first (it is the most complete)."""
    facts: list[tuple[str, Any, str]] = []
    own = meta.get(METADATA_KEY)
    if own:
        record = json.loads(own)
        for name, value in record.items():
            if name in _FIELDS and name != "sources" and value not in ("", [], None, 0, [0, 0]):
                facts.append((name, _as_field(name, value), f"{METADATA} '{METADATA_KEY}'"))
    if meta.get("names"):
        facts.append(("labels", tuple(parse_names(meta["names"])), f"{METADATA} 'names'"))
    for key in ("classes", "class_names"):
        if meta.get(key):
            facts.append(("labels", tuple(parse_names(meta[key])), f"{METADATA} '{key}'"))
    if meta.get("character"):
        facts.append(("charset", _lines(meta["character"]), f"{METADATA} 'character'"))
    if meta.get("blank_index", "").strip().lstrip("-").isdigit():
        facts.append(("blank_index", int(meta["blank_index"]), f"{METADATA} 'blank_index'"))
    for key in ("decoder", "task", "precision"):
        if meta.get(key):
            facts.append((key, meta[key].strip(), f"{METADATA} '{key}'"))
    if meta.get("preprocess", "").strip() in PRESET_NAMES:
        facts.append(("preprocess", meta["preprocess"].strip(), f"{METADATA} 'preprocess'"))
    if meta.get("imgsz"):
        facts.append(("input_size", _imgsz(meta["imgsz"]), f"{METADATA} 'imgsz'"))
    return facts


_FIELDS = {f.name for f in dataclasses.fields(ModelInfo)}


def _as_field(name: str, value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# -- resolution --------------------------------------------------------------------------------------


def resolve(
    metadata: Mapping[str, str],
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    path: str | Path | None = None,
    params: Mapping[str, Any] | None = None,
) -> ModelInfo:
    """The model's ``ModelInfo``: parameters > metadata > sidecars > family defaults (module docstring).

    ``params`` keys are ``ModelInfo`` field names; ``labels``/``charset`` may also be a file path.
    Empty / zero values are "not given". Raises ``ModelInfoError`` on a contradiction.
    """
    model = Path(path) if path is not None else None
    candidates: list[tuple[str, Any, str]] = []
    for name, given in (params or {}).items():
        value = _param_value(name, given)
        if value not in ("", (), None, 0, (0, 0)):
            candidates.append((name, value, f"{PARAMETER} '{name}'"))
    graph, family = _tensor_facts(inputs, outputs, metadata)
    candidates += graph + _metadata_facts(metadata)
    candidates += _sidecar_facts(model, candidates) + family
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    warnings: list[str] = []
    for name, value, source in candidates:
        if name not in values:
            values[name], sources[name] = value, source
        elif values[name] != value:
            _disagree(name, (values[name], sources[name]), (value, source), warnings)
    if "source_sha256" not in values and model is not None and model.suffix == ".onnx" and model.is_file():
        values["source_sha256"], sources["source_sha256"] = _sha256(model), "file"
    info = ModelInfo(**values, sources=sources, warnings=tuple(warnings))
    _check_pairs(info)
    return info


def _param_value(name: str, value: Any) -> Any:
    if name in ("labels", "charset") and isinstance(value, (str, Path)):
        return _read_lines(Path(value)) if str(value) else ()
    if isinstance(value, list):
        return tuple(value)
    return value


def _disagree(name: str, first: tuple[Any, str], other: tuple[Any, str], warnings: list[str]) -> None:
    """A parameter against the model's own metadata is an error; any weaker disagreement a warning."""
    (v1, s1), (v2, s2) = first, other
    if name in ("input_size", "outputs", "input_layout"):
        return  # sizes and output choices are checked against the graph by the stage that uses them
    text = f"{name} {_show(v1)} from {s1} contradicts {_show(v2)} from {s2}"
    if s1.startswith(PARAMETER) and s2.startswith(METADATA):
        raise ModelInfoError(f"{text}; remove the parameter or use a model that matches it")
    warnings.append(f"{text}; using the {s1.split(' ')[0]} value")


def _show(value: Any) -> str:
    return f"{len(value)} entries {list(value)[:6]}" if isinstance(value, tuple) else repr(value)


def _sidecar_facts(model: Path | None, known: list[tuple[str, Any, str]]) -> list[tuple[str, Any, str]]:
    if model is None:
        return []
    facts: list[tuple[str, Any, str]] = []
    labels = model.with_name(model.stem + "_labels.txt")
    if labels.is_file():
        facts.append(("labels", _read_lines(labels), f"{SIDECAR} {labels.name}"))
    # A folder-wide character file only belongs to text recognizers (it sits beside the detector too).
    texty = any(n == "charset" or (n == "decoder" and v in TEXT_DECODERS) for n, v, _ in known)
    if texty:
        for name in (model.stem + "_charset.txt", "plate_charset.txt"):
            if model.with_name(name).is_file():
                facts.append(("charset", _read_lines(model.with_name(name)), f"{SIDECAR} {name}"))
                break
    return facts


def _tensor_facts(
    inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], meta: Mapping[str, str]
) -> tuple[list[tuple[str, Any, str]], list[tuple[str, Any, str]]]:
    """(facts of the graph itself, trusted before metadata; family defaults, trusted last)."""
    facts: list[tuple[str, Any, str]] = [("outputs", tuple(o.name for o in outputs), TENSORS)]
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        return facts, []
    shape = inputs[0].shape
    nhwc = _static(shape[3]) == 3 and _static(shape[1]) != 3
    facts.append(("input_layout", "NHWC" if nhwc else "NCHW", TENSORS))
    h, w = (_static(shape[1]), _static(shape[2])) if nhwc else (_static(shape[2]), _static(shape[3]))
    if h and w:
        return [*facts, ("input_size", (w, h), TENSORS)], []
    if meta.get("character") and not nhwc:
        # PaddleOCR recognizers (dynamic H and W) were trained at 48 x 320: their native input size.
        size = (w or PADDLEOCR_REC_SIZE[0], h or PADDLEOCR_REC_SIZE[1])
        return facts, [("input_size", size, f"{FAMILY} PaddleOCR recognizer (rec_image_shape 3,48,320)")]
    return facts, []


def _check_pairs(info: ModelInfo) -> None:
    """Facts that must agree with each other (a YOLOX decoder needs YOLOX pre-processing)."""
    want = DECODER_PRESETS.get(info.decoder)
    if info.preprocess and want and info.preprocess != want:
        raise ModelInfoError(
            f"{info.describe('decoder')} needs preprocess '{want}' but the model has "
            f"{info.describe('preprocess')}"
        )
    if info.preprocess == "yolox" and info.decoder and not info.decoder.startswith("yolox"):
        raise ModelInfoError(f"{info.describe('preprocess')} does not fit {info.describe('decoder')}")


def _static(dim: object) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def engine_info(engine: Any, params: Mapping[str, Any] | None = None) -> ModelInfo:
    """``resolve`` for an opened engine plus a stage's parameters; a contradiction is an
    ``EngineError`` naming the model, so nodes report it like any other startup failure."""
    try:
        return resolve(engine.metadata, engine.inputs, engine.outputs, engine.path, params)
    except ModelInfoError as exc:
        raise EngineError(f"{Path(engine.path).name}: {exc}") from None


# -- ONNX files (no engine needed) -------------------------------------------------------------------


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """An ONNX file's ``metadata_props`` (weights not loaded)."""
    import onnx  # lazy: ~1.7 s to import; only readers of ONNX files pay for it

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def onnx_info(path: str | Path, params: Mapping[str, Any] | None = None) -> ModelInfo:
    """``resolve`` for an ONNX file without opening a runtime (precision copies, engine sidecars)."""
    import onnx  # lazy: ~1.7 s to import; only readers of ONNX files pay for it

    model = onnx.load(str(path), load_external_data=False)
    init = {t.name for t in model.graph.initializer}

    def spec(v: Any) -> TensorSpec:
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim)
        return TensorSpec(v.name, dims)

    ins = [spec(v) for v in model.graph.input if v.name not in init]
    outs = [spec(v) for v in model.graph.output]
    return resolve({p.key: p.value for p in model.metadata_props}, ins, outs, path, params)


def write_info(model: Any, info: ModelInfo) -> None:
    """Set ``info``'s metadata on an ``onnx.ModelProto`` in place (other keys are kept)."""
    entries = info.to_metadata()
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in entries]
    del model.metadata_props[:]
    for key, value in [*kept, *entries.items()]:
        model.metadata_props.add(key=key, value=value)
