"""``engine_builder`` node: builds the missing or stale TensorRT engines of its config at startup.

Each entry of ``engines`` is ``"<onnx>[;precision=..][;workspace_mb=..][;dla_core=..][;profile.<input>=min:opt:max]"``
(defaults from the node's own parameters). Engines go to ``cache_dir`` through the engine cache
(key = ONNX + recipe + TensorRT flavour and version + GPU and compute capability, file lock, atomic
writes), one at a time in a worker thread. On an x86 robot with an RTX GPU and TensorRT-RTX,
``TRT_PERCEPTION_TENSORRT=tensorrt_rtx`` makes it build TensorRT-RTX engines (``inference.trt_features``).
Progress (TensorRT's progress monitor on 10+ and TensorRT-RTX, elapsed time otherwise) goes to the log and
``/diagnostics``; the state of every engine is published latched (transient-local) as JSON on
``engine_builder/status`` (format in ``ros/engine_wait.py``), which inference nodes wait on.
Where TensorRT is absent the status says so and the nodes fall back to their ONNX with ONNX Runtime.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from std_msgs.msg import String

from ..inference.factory import tensorrt_available, tensorrt_unavailable_reason
from ..modelops.engine_cache import parse_engine_entry
from ..ros.diagnostics import ERROR, OK, WARN
from ..ros.engine_wait import STATUS_TOPIC
from ..ros.files import resolve_file
from ..ros.node_base import PerceptionNode, run_node
from ..ros.params import Param
from ..ros.qos import latched_qos

PARAMETERS: tuple[Param, ...] = (
    Param(
        "engines",
        [
            "models/detector.onnx",
            "models/plate_reader_ctc.onnx;profile.x=1x3x32x160:8x3x32x160:16x3x32x160",
            "models/segmenter.onnx;profile.input=1x3x256x256:1x3x352x640:1x3x736x1280",
            "models/pilotnet.onnx;profile.image=1x3x66x200:1x3x66x200:8x3x66x200",
        ],
        "Engines to build: '<onnx>[;precision=fp16][;workspace_mb=N][;dla_core=N][;max_batch=N]"
        "[;profile.<input>=min:opt:max]' (shapes as 1x3x640x640; max_batch: batches 1..N of a "
        "dynamic-batch model, e.g. one frame per camera of a multi-camera perception_pipeline).",
    ),
    Param("cache_dir", "engines", "Folder of the built engines, their JSON sidecars and the timing cache."),
    Param("precision", "fp16", "Default precision: fp32 | fp16 | int8 (int8 needs a Q/DQ ONNX)."),
    Param("workspace_mb", 1024, "Default builder workspace limit (MiB)."),
    Param("dla_core", -1, "Default DLA core (Jetson Xavier/Orin); -1 builds for the GPU."),
    Param("optimization_level", -1, "Builder optimization level 0-5 (TensorRT 8.6+); -1 keeps TensorRT's."),
    Param("device", 0, "CUDA device index."),
    Param("status_period", 2.0, "Seconds between status re-publications while building (elapsed time)."),
)


def _resolve(path: str) -> str:
    return str(Path(resolve_file(path)).resolve())


class EngineBuilderNode(PerceptionNode):
    """A plain node, not a lifecycle one: a build job that serves no model (it holds the GPU only while a
    build runs, in its worker thread), whose latched status the inference nodes wait on at their own
    configure; deactivating it would only stop a build half-way, and a failed entry is already an
    ERROR naming it while the other engines still build."""

    PARAMETERS = PARAMETERS
    COMPONENT = "engine_builder"

    def __init__(self) -> None:
        super().__init__("engine_builder")
        p = self.params
        self._pub = self.publisher(String, STATUS_TOPIC, latched_qos())
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._recipes = []
        defaults = {
            "precision": p["precision"],
            "workspace_mb": p["workspace_mb"],
            "dla_core": p["dla_core"],
            "optimization_level": p["optimization_level"],
        }
        for entry in p["engines"]:
            try:
                model, recipe = parse_engine_entry(str(entry), defaults)
            except Exception as exc:
                self.get_logger().error(f"engines entry '{entry}': {exc}")
                self.diagnostics.report(f"config:{entry}", ERROR, str(exc), ttl_s=None)
                continue
            model = _resolve(model)
            self._entries.append(
                {
                    "model": model,
                    "precision": recipe.precision,
                    "max_batch": recipe.max_batch,
                    "engine": "",
                    "state": "pending",
                    "message": "",
                    "elapsed_s": 0.0,
                }
            )
            self._recipes.append(recipe)

        self._tensorrt = tensorrt_available()
        self._reason = "" if self._tensorrt else tensorrt_unavailable_reason()
        if not self._tensorrt:
            for e in self._entries:
                e.update(state="unavailable", message=self._reason)
            self.get_logger().warning(
                f"{self._reason}: nothing to build; inference nodes will use ONNX Runtime"
            )
            self.diagnostics.report("tensorrt", WARN, self._reason, ttl_s=None)
        self._building: int | None = None
        self._started = 0.0
        self.publish_status()
        self.create_timer(max(float(p["status_period"]), 0.1), self._tick)
        if self._tensorrt and self._entries:
            self._worker = threading.Thread(target=self._build_all, name="engine_builder", daemon=True)
            self._worker.start()

    # -- status
    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "tensorrt": self._tensorrt,
                "reason": self._reason,
                "engines": [dict(e) for e in self._entries],
                "stamp": time.time(),
            }

    def publish_status(self) -> None:
        status = self.status()
        self._pub.publish(String(data=json.dumps(status)))
        states = [e["state"] for e in status["engines"]]
        self.diagnostics.set_value("engines", len(states))
        for state in ("ready", "building", "pending", "failed", "unavailable"):
            self.diagnostics.set_value(f"engines.{state}", states.count(state))

    def _tick(self) -> None:
        with self._lock:
            i = self._building
            if i is not None:
                self._entries[i]["elapsed_s"] = round(time.monotonic() - self._started, 1)
        if i is not None:
            e = self._entries[i]
            self.diagnostics.report(
                "build",
                OK,
                f"building {Path(e['model']).name}:{e['precision']} {e['elapsed_s']:.0f} s: {e['message']}",
            )
            self.publish_status()

    def _set(self, i: int, **fields: Any) -> None:
        with self._lock:
            self._entries[i].update(fields)
        self.publish_status()

    # -- work
    def _build_all(self) -> None:
        # Deliberately lazy: tensorrt_build imports TensorRT, absent on CPU-only machines.
        from ..modelops.tensorrt_build import ensure_engine

        cache_dir = Path(str(self.params["cache_dir"])).resolve()
        log = self.get_logger()
        for i, recipe in enumerate(self._recipes):
            e = self._entries[i]
            name = f"{Path(e['model']).name}:{e['precision']}"

            def progress(msg: str, i: int = i, name: str = name) -> None:
                log.info(f"{name}: {msg}")
                self._set(i, message=msg)

            with self._lock:
                self._building, self._started = i, time.monotonic()
            self._set(i, state="building", message="checking cache")
            try:
                result = ensure_engine(e["model"], recipe, cache_dir, progress, int(self.params["device"]))
            except Exception as exc:
                log.error(f"{name}: build failed: {exc}")
                self.diagnostics.report(f"build:{name}", ERROR, str(exc), ttl_s=None)
                self._set(i, state="failed", message=str(exc))
                continue
            finally:
                with self._lock:
                    self._building = None
            what = f"built in {result.seconds:.1f} s ({result.reason})" if result.built else "up to date"
            log.info(f"{name}: {what}: {result.path}")
            self._set(
                i, state="ready", engine=str(result.path), message=what, elapsed_s=round(result.seconds, 1)
            )
        self.diagnostics.clear("build")


def main(args: list[str] | None = None) -> int:
    return run_node(EngineBuilderNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
