"""ONNX -> TensorRT plan, cached: the key, the lock and the atomic write, free of TensorRT and ROS.

An engine is only valid for one (ONNX, recipe, TensorRT version, GPU model + compute capability, DLA
core). ``EngineCache.ensure`` builds it once and keeps it at a stable path the nodes load
(``<cache_dir>/<model>.<precision>[.dla<N>].engine``) with a JSON sidecar holding the key:

* same key and an intact file (size + SHA-256 in the sidecar, optional deserialize check): reused,
  nothing rebuilt;
* key changed (new ONNX, other recipe, TensorRT upgrade, other GPU) or the file is corrupt / fails to
  deserialize: rebuilt, with a warning saying why;
* the sidecar also holds the ONNX's metadata plus its resolved ``ModelInfo`` (labels from a
  ``<stem>_labels.txt`` included) under ``metadata``, refreshed on every ``ensure``: the engine knows
  what its ONNX knew (``inference.engine_sidecar.engine_metadata``, read by ``TensorRTEngine.metadata``);
* two processes asking at once: an ``fcntl`` lock per engine makes the second wait and then find the
  first one's engine; writes go to a temp file in the same folder and are renamed into place, so a
  reader never sees half a plan.

The build itself is a plain callable ``build(onnx_path, recipe, progress) -> bytes``;
``modelops.tensorrt_build.build_plan`` is the real one, tests pass their own.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from ..inference.engine import EngineError
from ..inference.engine_sidecar import sidecar_path
from ..inference.model_info import onnx_info, onnx_metadata
from ..inference.trt_features import TensorRTFeatures
from ..io.files import atomic_save, atomic_write
from .precision import to_fp16

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
#: Bumped when the cache layout or key changes, so old engines are rebuilt rather than misread
#: (2: the target names the TensorRT flavour).
CACHE_FORMAT = 2

Shape = tuple[int, ...]
ProgressFn = Callable[[str], None]
BuildFn = Callable[[Path, "BuildRecipe", ProgressFn], bytes]
ValidateFn = Callable[[Path], None]


@dataclass(frozen=True)
class ShapeProfile:
    """One input's optimization-profile shapes (TensorRT needs all three for a dynamic input)."""

    name: str
    min: Shape
    opt: Shape
    max: Shape

    def __post_init__(self) -> None:
        if not len(self.min) == len(self.opt) == len(self.max):
            raise EngineError(f"profile for '{self.name}': min/opt/max ranks differ")
        if any(not a <= b <= c for a, b, c in zip(self.min, self.opt, self.max)):
            raise EngineError(
                f"profile for '{self.name}': need min <= opt <= max per dim, got "
                f"min {self.min} opt {self.opt} max {self.max}"
            )

    @classmethod
    def parse(cls, name: str, spec: str) -> ShapeProfile:
        """``"1x3x320x320:1x3x640x640:4x3x1280x1280"`` (min:opt:max) or one shape for all three."""
        parts = [tuple(int(d) for d in p.lower().split("x")) for p in spec.split(":")]
        if len(parts) == 1:
            parts = parts * 3
        if len(parts) != 3:
            raise EngineError(f"profile for '{name}': expected min:opt:max, got '{spec}'")
        return cls(name, parts[0], parts[1], parts[2])


@dataclass(frozen=True)
class BuildRecipe:
    """How to build one engine: precision, workspace, optimization profiles, DLA.

    ``max_batch``: the profile of an input whose only dynamic dimension is its batch (e.g. the sample
    detector's ``[batch, 3, 288, 512]``) when ``profiles`` names none for it: batch min 1, opt and max
    ``max_batch``. Opt at the maximum because a multi-camera pipeline's batches are full in steady
    state (every camera delivers at its rate); a partial batch (a camera stalled) still runs, on
    kernels tuned for the full one. 1 builds the batch-1 engine a static model gets."""

    precision: str = "fp16"
    workspace_mb: int = 1024
    profiles: tuple[ShapeProfile, ...] = ()
    dla_core: int = -1
    #: Let unsupported DLA layers fall back to the GPU.
    gpu_fallback: bool = True
    #: 0-5 (TensorRT 8.6+); higher searches longer for faster kernels. None keeps TensorRT's default.
    optimization_level: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    max_batch: int = 1

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise EngineError(f"precision '{self.precision}' unknown; choose one of {', '.join(PRECISIONS)}")
        if self.workspace_mb <= 0:
            raise EngineError(f"workspace_mb must be > 0, got {self.workspace_mb}")
        if self.max_batch < 1:
            raise EngineError(f"max_batch must be >= 1, got {self.max_batch}")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["profiles"] = [asdict(p) for p in self.profiles]
        d["extra"] = dict(self.extra)
        if self.max_batch == 1:
            del d["max_batch"]  # the cache key of every engine built before the field existed stays valid
        return d


@dataclass(frozen=True)
class Target:
    """Where the engine will run; any change makes a cached plan unusable.

    ``compute_capability`` is the GPU's, or for a TensorRT-RTX ahead-of-time build the one targeted
    (``gpu_name`` then says so); ``flavour`` is ``tensorrt`` or ``tensorrt_rtx`` (trt_features)."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    dla_core: int = -1
    flavour: str = "tensorrt"


@dataclass(frozen=True)
class BuildResult:
    path: Path
    key: str
    built: bool
    reason: str
    seconds: float
    metadata: dict[str, Any]


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def onnx_digest(onnx_path: Path) -> str:
    """SHA-256 of the ONNX file plus any external-data files next to it (``*.onnx.data``)."""
    onnx_path = Path(onnx_path)
    try:
        digest = file_sha256(onnx_path)
    except FileNotFoundError:
        raise EngineError(f"ONNX model not found: {onnx_path}") from None
    except OSError as exc:
        raise EngineError(f"cannot read ONNX model {onnx_path}: {exc}") from exc
    extras = sorted(onnx_path.parent.glob(onnx_path.name + ".data"))
    if extras:
        h = hashlib.sha256(digest.encode())
        for p in extras:
            h.update(file_sha256(p).encode())
        digest = h.hexdigest()
    return digest


def cache_key(onnx_sha256: str, recipe: BuildRecipe, target: Target) -> str:
    blob = json.dumps(
        {"format": CACHE_FORMAT, "onnx": onnx_sha256, "recipe": recipe.as_dict(), "target": asdict(target)},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def engine_name(onnx_path: Path, recipe: BuildRecipe) -> str:
    dla = f".dla{recipe.dla_core}" if recipe.dla_core >= 0 else ""
    return f"{Path(onnx_path).stem}.{recipe.precision}{dla}.engine"


@contextlib.contextmanager
def file_lock(path: Path, timeout_s: float = 3600.0, poll_s: float = 0.2) -> Iterator[None]:
    """Exclusive ``fcntl`` lock on ``path`` (created if missing), released on exit or process death."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EngineError(f"timed out after {timeout_s:.0f} s waiting for lock {path}") from None
                time.sleep(poll_s)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


class EngineCache:
    """Engines under ``cache_dir`` keyed by ONNX + recipe + target; see the module docstring."""

    def __init__(self, cache_dir: str | Path, lock_timeout_s: float = 3600.0) -> None:
        self.cache_dir = Path(cache_dir)
        self.lock_timeout_s = lock_timeout_s

    def engine_path(self, onnx_path: Path, recipe: BuildRecipe) -> Path:
        return self.cache_dir / engine_name(onnx_path, recipe)

    sidecar = staticmethod(sidecar_path)

    def check(
        self,
        onnx_path: Path,
        recipe: BuildRecipe,
        target: Target,
        validate: ValidateFn | None = None,
        build_onnx: Path | None = None,
    ) -> tuple[bool, str, str]:
        """(up to date?, reason, key) without building or locking."""
        digest = onnx_digest(Path(onnx_path))
        if build_onnx is not None and Path(build_onnx) != Path(onnx_path):
            digest = hashlib.sha256((digest + onnx_digest(Path(build_onnx))).encode()).hexdigest()
        key = cache_key(digest, recipe, target)
        expected = _expected(digest, recipe, target)
        ok, reason = self._state(self.engine_path(onnx_path, recipe), key, validate, expected)
        return ok, reason, key

    def _state(
        self, path: Path, key: str, validate: ValidateFn | None, expected: Mapping[str, Any]
    ) -> tuple[bool, str]:
        meta_path = self.sidecar(path)
        if not path.is_file():
            return False, "missing"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            return False, f"sidecar {meta_path.name} unreadable ({exc.__class__.__name__})"
        if meta.get("key") != key:
            return False, f"stale: {_what_changed(meta, expected)}"
        if path.stat().st_size != meta.get("size") or file_sha256(path) != meta.get("sha256"):
            return False, "corrupt: size or checksum differs from the sidecar"
        if validate is not None:
            try:
                validate(path)
            except Exception as exc:
                return False, f"corrupt: {exc}"
        return True, "up to date"

    def ensure(
        self,
        onnx_path: str | Path,
        recipe: BuildRecipe,
        target: Target,
        build: BuildFn,
        validate: ValidateFn | None = None,
        progress: ProgressFn | None = None,
        build_onnx: str | Path | None = None,
    ) -> BuildResult:
        """Return an up-to-date engine for the arguments, building it (once, under a lock) if needed.

        ``build_onnx`` is the file actually given to the builder when it differs from ``onnx_path``
        (the FP16 copy TensorRT 11 needs); the engine keeps ``onnx_path``'s name, the key hashes both.
        """
        onnx_path = Path(onnx_path)
        progress = progress or (lambda _msg: None)
        source = Path(build_onnx) if build_onnx is not None else onnx_path
        digest = onnx_digest(onnx_path)
        if source != onnx_path:
            digest = hashlib.sha256((digest + onnx_digest(source)).encode()).hexdigest()
        key = cache_key(digest, recipe, target)
        path = self.engine_path(onnx_path, recipe)
        expected = _expected(digest, recipe, target)
        metadata = model_metadata(onnx_path, recipe.precision)
        ok, reason = self._state(path, key, validate, expected)
        if ok:
            return BuildResult(path, key, False, reason, 0.0, self._refresh(path, metadata))
        lock = path.with_name(path.name + ".lock")
        with file_lock(lock, self.lock_timeout_s):
            # Another process may have built it while we waited for the lock.
            ok, reason = self._state(path, key, validate, expected)
            if ok:
                meta = self._refresh(path, metadata)
                return BuildResult(path, key, False, "built by another process", 0.0, meta)
            if reason != "missing":
                log.warning("rebuilding %s: %s", path.name, reason)
            progress(f"building {path.name} ({reason})")
            start = time.monotonic()
            plan = build(source, recipe, progress)
            if not plan:
                raise EngineError(f"building {path.name} from {onnx_path} produced an empty plan")
            seconds = time.monotonic() - start
            meta = {
                "key": key,
                "format": CACHE_FORMAT,
                "onnx": str(onnx_path.resolve()),
                **expected,
                "size": len(plan),
                "sha256": hashlib.sha256(plan).hexdigest(),
                "build_seconds": round(seconds, 3),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "metadata": metadata,
            }
            # Plan first, sidecar last: a crash in between leaves a plan whose sidecar does not match,
            # which the next start treats as stale and rebuilds.
            atomic_write(path, plan)
            atomic_write(self.sidecar(path), json.dumps(meta, indent=2).encode())
            progress(f"built {path.name} in {seconds:.1f} s")
            return BuildResult(path, key, True, reason, seconds, meta)

    def _meta(self, path: Path) -> dict[str, Any]:
        try:
            return dict(json.loads(self.sidecar(path).read_text()))
        except (OSError, ValueError):
            return {}

    def _refresh(self, path: Path, metadata: dict[str, str]) -> dict[str, Any]:
        """The sidecar with the ONNX's current metadata (a relabelled model needs no rebuild; sidecars
        written before the metadata was kept get it)."""
        meta = self._meta(path)
        if meta.get("metadata") != metadata:
            meta["metadata"] = metadata
            atomic_write(self.sidecar(path), json.dumps(meta, indent=2).encode())
        return meta


def model_metadata(onnx_path: Path, precision: str) -> dict[str, str]:
    """What an engine built from ``onnx_path`` at ``precision`` must know: the ONNX's metadata and
    its resolved ``ModelInfo`` (sidecar labels included), for ``engine_sidecar.engine_metadata``."""
    try:
        raw = onnx_metadata(onnx_path)
        info = onnx_info(onnx_path)
    except DecodeError as exc:  # not an ONNX protobuf: the builder reports it properly
        log.warning("%s: no metadata for the engine sidecar (%s)", onnx_path.name, exc)
        return {}
    precision = info.precision if info.precision == "int8" else precision  # a Q/DQ ONNX stays INT8
    return {**raw, **info.derived(precision).to_metadata()}


def _what_changed(meta: Mapping[str, Any], expected: Mapping[str, Any]) -> str:
    """Which of ONNX / recipe / target fields differ between an old sidecar and this request."""
    changed = []
    if meta.get("onnx_sha256") != expected["onnx_sha256"]:
        changed.append("ONNX changed")
    if meta.get("recipe") != expected["recipe"]:
        changed.append("recipe changed")
    old_t, new_t = meta.get("target") or {}, expected["target"]
    changed += [f"{k} {old_t.get(k)!r} -> {new_t[k]!r}" for k in sorted(new_t) if old_t.get(k) != new_t[k]]
    if meta.get("format") != CACHE_FORMAT:
        changed.append(f"cache format {meta.get('format')} -> {CACHE_FORMAT}")
    return ", ".join(changed) or "key differs"


def _expected(digest: str, recipe: BuildRecipe, target: Target) -> dict[str, Any]:
    # Through JSON so tuples compare equal to the lists a sidecar reads back.
    return dict(
        json.loads(json.dumps({"onnx_sha256": digest, "recipe": recipe.as_dict(), "target": asdict(target)}))
    )


def has_qdq(onnx_path: Path) -> bool:
    """True when the ONNX holds QuantizeLinear nodes (explicit INT8)."""
    import onnx  # lazy: ~1.7 s to import

    model = onnx.load(str(onnx_path), load_external_data=False)
    return any(n.op_type == "QuantizeLinear" for n in model.graph.node)


def onnx_for_build(onnx_path: Path, precision: str, feats: TensorRTFeatures, work_dir: Path) -> Path:
    """The ONNX the builder should parse for ``precision`` on this TensorRT (see ``trt_features``).

    FP16 on a strongly typed TensorRT gets an FP16 copy (made once, next to the engines); INT8 must
    come as a Q/DQ ONNX (``trt-perception quantize``) since implicit calibration is gone in 11.
    """
    onnx_path = Path(onnx_path)
    wanted = feats.onnx_for(precision)
    if wanted == "int8" and not has_qdq(onnx_path):
        raise EngineError(
            f"{onnx_path}: precision int8 needs a Q/DQ ONNX (no QuantizeLinear nodes found); "
            f"make one with `trt-perception quantize --int8 ...` and list that file"
        )
    if wanted != "fp16":
        return onnx_path
    out = Path(work_dir) / f"{onnx_path.stem}.fp16.onnx"
    stamp = out.with_name(out.name + ".src")
    digest = onnx_digest(onnx_path)
    if not out.is_file() or not stamp.is_file() or stamp.read_text() != digest:
        # atomically: a second process building the same engine parses this file meanwhile
        atomic_save(out, lambda tmp: to_fp16(onnx_path, tmp))
        atomic_write(stamp, digest.encode())
    return out


def load_recipe(entry: Mapping[str, Any]) -> BuildRecipe:
    """A recipe from a config mapping: ``precision``, ``workspace_mb``, ``dla_core``,
    ``profiles: {input: "min:opt:max"}``, ``optimization_level``."""
    profiles = tuple(ShapeProfile.parse(k, str(v)) for k, v in dict(entry.get("profiles") or {}).items())
    level = entry.get("optimization_level")
    return BuildRecipe(
        precision=str(entry.get("precision", "fp16")),
        workspace_mb=int(entry.get("workspace_mb", 1024)),
        profiles=profiles,
        dla_core=int(entry.get("dla_core", -1)),
        optimization_level=None if level is None or int(level) < 0 else int(level),
        max_batch=int(entry.get("max_batch", 1)),
    )


def parse_engine_entry(entry: str, defaults: Mapping[str, Any]) -> tuple[str, BuildRecipe]:
    """``"models/x.onnx;precision=int8;workspace_mb=512;profile.images=1x3x320x320:1x3x640x640:1x3x640x640"``
    -> (model, recipe); keys not given come from ``defaults`` (the node's/CLI's own settings)."""
    parts = [p.strip() for p in entry.split(";") if p.strip()]
    if not parts:
        raise EngineError("empty engine entry")
    model, fields = parts[0], dict(defaults)
    profiles: dict[str, str] = dict(defaults.get("profiles") or {})
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        if not sep:
            raise EngineError(f"engine entry '{entry}': '{part}' is not key=value")
        if key.startswith("profile."):
            profiles[key.removeprefix("profile.")] = value
        elif key in ("precision", "workspace_mb", "dla_core", "optimization_level", "max_batch"):
            fields[key] = value
        else:
            raise EngineError(
                f"engine entry '{entry}': unknown key '{key}' "
                "(precision, workspace_mb, dla_core, optimization_level, max_batch, profile.<input>)"
            )
    fields["profiles"] = profiles
    return model, load_recipe(fields)
