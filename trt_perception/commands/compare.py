"""``trt-perception compare``: two models/backends/precisions on the same inputs, error vs tolerances.

    trt-perception compare models/detector.onnx engines/detector.fp16.engine
    trt-perception compare models/detector.onnx models/detector.int8.onnx --atol 0.05 --rtol 0.05
    trt-perception compare a.onnx b.onnx --shape images=1x3x640x640 --images data/val/images -n 8

An element passes when ``|b - a| <= atol + rtol * |a|`` (``a`` is the reference), like Polygraphy's
comparator; per output it prints max/mean absolute and relative error and the failing fraction.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..inference.engine import EngineError
from ..inference.factory import BACKENDS, open_engine
from ..modelops.precision import images_from_folder


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("reference", help="reference model (ONNX or engine)")
    p.add_argument("candidate", help="model to check against it")
    p.add_argument("--backend-a", default="auto", choices=BACKENDS, help="backend of the reference")
    p.add_argument("--backend-b", default="auto", choices=BACKENDS, help="backend of the candidate")
    p.add_argument(
        "--shape",
        action="append",
        default=[],
        metavar="INPUT=1x3x640x640",
        help="concrete shape of a dynamic input (repeatable)",
    )
    p.add_argument("--images", help="folder of images for the first image input (resized, RGB, /255)")
    p.add_argument("-n", "--iterations", type=int, default=4, help="input sets to compare")
    p.add_argument("--atol", type=float, default=1e-3)
    p.add_argument("--rtol", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the comparison to this JSON file")


def compare_outputs(
    a: dict[str, np.ndarray], b: dict[str, np.ndarray], atol: float, rtol: float
) -> dict[str, Any]:
    """Per output: max/mean abs and rel error and the fraction outside ``atol + rtol * |a|``."""
    rows: dict[str, Any] = {}
    for name, ref in a.items():
        if name not in b:
            rows[name] = {"error": "missing in candidate", "passed": False}
            continue
        cand = b[name]
        if ref.shape != cand.shape:
            rows[name] = {"error": f"shape {cand.shape} vs reference {ref.shape}", "passed": False}
            continue
        r, c = ref.astype(np.float64), cand.astype(np.float64)
        abs_err = np.abs(c - r)
        rel_err = abs_err / np.maximum(np.abs(r), 1e-12)
        bad = abs_err > atol + rtol * np.abs(r)
        rows[name] = {
            "max_abs": float(abs_err.max(initial=0)),
            "mean_abs": float(abs_err.mean()) if abs_err.size else 0.0,
            "max_rel": float(rel_err.max(initial=0)),
            "mean_rel": float(rel_err.mean()) if rel_err.size else 0.0,
            "fail_fraction": float(bad.mean()) if bad.size else 0.0,
            "passed": not bool(bad.any()),
        }
    return rows


def _feeds(
    engine: Any, shapes: dict[str, tuple[int, ...]], images: list[np.ndarray], i: int, seed: int
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + i)
    feeds = {}
    for spec in engine.inputs:
        shape = shapes.get(spec.name)
        if shape is None:
            # A dynamic batch alone (the detector's, for multi-camera batches) compares at batch 1.
            dims = [
                d if isinstance(d, int) and d > 0 else (1 if k == 0 else None)
                for k, d in enumerate(spec.shape)
            ]
            if None in dims:
                raise EngineError(f"input '{spec.name}' is dynamic ({spec}); give --shape {spec.name}=...")
            shape = tuple(int(d) for d in dims)  # type: ignore[arg-type]
        if images and len(shape) == 4 and shape[1] == 3 and spec.dtype == np.float32:
            img = cv2.resize(images[i % len(images)], (shape[3], shape[2]))
            x = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)[None].astype(np.float32) / 255.0
            feeds[spec.name] = np.ascontiguousarray(np.repeat(x, shape[0], axis=0))
        elif np.issubdtype(spec.dtype, np.floating):
            feeds[spec.name] = rng.random(shape).astype(spec.dtype)
        else:
            feeds[spec.name] = rng.integers(0, 2, shape).astype(spec.dtype)
    return feeds


def run(args: argparse.Namespace) -> int:
    try:
        a = open_engine(args.reference, args.backend_a)
        b = open_engine(args.candidate, args.backend_b)
        shapes = {
            k: tuple(int(d) for d in v.lower().split("x")) for k, v in (s.split("=", 1) for s in args.shape)
        }
        images = list(images_from_folder(args.images, args.iterations)) if args.images else []
        worst: dict[str, dict[str, Any]] = {}
        for i in range(args.iterations):
            feeds = _feeds(a, shapes, images, i, args.seed)
            out_a = {k: v.copy() for k, v in a.infer(feeds).items()}
            rows = compare_outputs(out_a, b.infer(feeds), args.atol, args.rtol)
            for name, row in rows.items():
                old = worst.get(name)
                if old is None or "error" in row or row.get("max_abs", 0) > old.get("max_abs", 0):
                    worst[name] = row
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"reference {a.path.name} ({a.backend}) vs candidate {b.path.name} ({b.backend}), "
        f"{args.iterations} input sets, atol {args.atol:g} rtol {args.rtol:g}"
    )
    print(
        f"{'output':24s} {'max abs':>10s} {'mean abs':>10s} {'max rel':>10s} {'mean rel':>10s} {'fail %':>8s}  result"
    )
    for name, row in worst.items():
        if "error" in row:
            print(f"{name:24s} {row['error']}  FAIL")
            continue
        print(
            f"{name:24s} {row['max_abs']:10.3g} {row['mean_abs']:10.3g} {row['max_rel']:10.3g} "
            f"{row['mean_rel']:10.3g} {100 * row['fail_fraction']:8.3f}  {'PASS' if row['passed'] else 'FAIL'}"
        )
    passed = all(r.get("passed") for r in worst.values())
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "reference": str(a.path),
                    "candidate": str(b.path),
                    "atol": args.atol,
                    "rtol": args.rtol,
                    "outputs": worst,
                    "passed": passed,
                },
                indent=2,
            )
        )
    return 0 if passed else 1
