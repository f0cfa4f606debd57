"""``trt-perception build``: ONNX -> TensorRT engines through the engine cache (same as the node).

trt-perception build models/detector.onnx --precision fp16
trt-perception build models/segmenter.onnx --profile input=1x3x256x256:1x3x352x640:1x3x736x1280
trt-perception build --config config/engine_builder.yaml          # the node's list
trt-perception build models/detector.onnx --check                  # up to date? (exit 1 if not)
trt-perception build --config config/engine_builder.yaml --compute-capability 8.6   # TensorRT-RTX, no GPU

``--compute-capability`` builds ahead of time with TensorRT-RTX for x86 RTX GPUs of that compute
capability (7.5, 8.0, 8.6, 8.9, 12.0, 12.1) on a machine without one (CI); the engines run only on
such a GPU with TensorRT-RTX (``TRT_PERCEPTION_TENSORRT=tensorrt_rtx`` on the robot).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..evaluation.configs import read_node_params
from ..inference.engine import EngineError
from ..inference.factory import tensorrt_unavailable_reason
from ..modelops.engine_cache import EngineCache, onnx_for_build, parse_engine_entry


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "models", nargs="*", help="ONNX files, or full engine entries 'x.onnx;precision=int8;profile.in=..'"
    )
    p.add_argument("--config", help="engine_builder YAML: build its 'engines' with its defaults")
    p.add_argument("--precision", default="fp16", choices=("fp32", "fp16", "int8"))
    p.add_argument("--workspace-mb", type=int, default=1024)
    p.add_argument("--dla-core", type=int, default=-1)
    p.add_argument("--optimization-level", type=int, default=-1)
    p.add_argument(
        "--max-batch",
        type=int,
        default=1,
        help="profile batch 1..N for inputs whose only dynamic dimension is the batch (one engine call for N cameras)",
    )
    p.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="INPUT=MIN:OPT:MAX",
        help="optimization profile of a dynamic input, shapes as 1x3x640x640 (repeatable)",
    )
    p.add_argument(
        "--cache-dir", default=None, help="engine folder (default: the config's cache_dir, else engines)"
    )
    p.add_argument("--device", type=int, default=0)
    p.add_argument("--check", action="store_true", help="only report whether each engine is up to date")
    p.add_argument(
        "--compute-capability",
        default="",
        help="TensorRT-RTX: build ahead of time for RTX GPUs of this compute capability (e.g. 8.6), no GPU needed",
    )


def _entries(args: argparse.Namespace) -> tuple[list[str], dict[str, Any], str]:
    defaults: dict[str, Any] = {
        "precision": args.precision,
        "workspace_mb": args.workspace_mb,
        "dla_core": args.dla_core,
        "optimization_level": args.optimization_level,
        "max_batch": args.max_batch,
        "profiles": dict(p.split("=", 1) for p in args.profile),
    }
    entries, cache_dir = list(args.models), args.cache_dir
    if args.config:
        params = read_node_params(args.config)
        entries += list(params.get("engines", []))
        for k in ("precision", "workspace_mb", "dla_core", "optimization_level"):
            defaults[k] = params.get(k, defaults[k])
        cache_dir = cache_dir or params.get("cache_dir")
    return entries, defaults, cache_dir or "engines"


def run(args: argparse.Namespace) -> int:

    entries, defaults, cache_dir = _entries(args)
    if not entries:
        print("nothing to build: give ONNX files or --config", file=sys.stderr)
        return 2
    cc = args.compute_capability or None
    # An ahead-of-time build needs TensorRT-RTX's builder only; any other one, a runtime for this GPU.
    reason = "" if cc else tensorrt_unavailable_reason()
    if not reason:
        try:
            from ..modelops import tensorrt_build as tb  # lazy: imports TensorRT, absent on CPU-only machines
        except ImportError as exc:
            reason = f"TensorRT is not installed ({exc})"
    if reason:
        print(
            f"{reason}: cannot build engines here; nodes will run the ONNX with ONNX Runtime", file=sys.stderr
        )
        return 2

    failures = 0
    for entry in entries:
        try:
            model, recipe = parse_engine_entry(entry, defaults)
            name = f"{Path(model).name}:{recipe.precision}"
            if args.check:
                target = tb.current_target(args.device, recipe.dla_core, cc)
                src = onnx_for_build(Path(model), recipe.precision, tb.current_features(), Path(cache_dir))
                ok, state, _ = EngineCache(cache_dir).check(
                    Path(model), recipe, target, None if cc else tb.validate_plan, src
                )
                print(f"{name}: {state}")
                failures += not ok
                continue
            start = time.monotonic()
            result = tb.ensure_engine(
                model,
                recipe,
                cache_dir,
                lambda m, n=name, t0=start: print(f"[{time.monotonic() - t0:6.1f} s] {n}: {m}"),
                args.device,
                cc,
            )
            print(f"{name}: {'built' if result.built else 'up to date'} -> {result.path}")
        except EngineError as exc:
            print(f"{entry}: {exc}", file=sys.stderr)
            failures += 1
    return 1 if failures else 0
