"""``trt-perception quantize``: FP16 and INT8 (Q/DQ, optionally accuracy-aware) copies of an ONNX.

    trt-perception quantize models/detector.onnx --fp16 models/detector.fp16.onnx
    trt-perception quantize models/detector.onnx --int8 models/detector.int8.onnx \\
        --calib-images data/val/images --preprocess yolo --count 64
    trt-perception quantize models/detector.onnx --int8 out.onnx --calib-bag data/sample_bag \\
        --calib-topic /camera/image_raw --accuracy-aware --max-drop 0.01

``--accuracy-aware`` measures output fidelity to FP32 (1 - normalised MSE over all outputs) on held-out
images and keeps the most harmful nodes in float until the relative drop is within ``--max-drop``;
task metrics (mAP, plate accuracy, mIoU) are what ``bench/bench_engines.py`` uses.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="FP32 ONNX model")
    p.add_argument("--fp16", metavar="OUT", help="write an FP16 copy (FP32 inputs/outputs kept)")
    p.add_argument("--int8", metavar="OUT", help="write an INT8 Q/DQ copy (static calibration)")
    p.add_argument("--calib-images", help="folder of calibration images")
    p.add_argument("--calib-bag", help="rosbag2 folder with sensor_msgs/Image calibration frames")
    p.add_argument("--calib-topic", default="/camera/image_raw")
    p.add_argument("--count", type=int, default=64, help="calibration images to use")
    p.add_argument(
        "--preprocess",
        default="resize",
        help="resize (plain resize, RGB, /255) or a vision.preprocess preset: yolo | ssd_tf | imagenet | pilotnet",
    )
    p.add_argument("--shape", help="network input HxW for dynamic models, e.g. 352x640")
    p.add_argument(
        "--target",
        default="tensorrt",
        choices=("tensorrt", "cpu"),
        help="tensorrt: symmetric INT8 activations; cpu: UINT8 activations (fast ONNX Runtime x86 kernels)",
    )
    p.add_argument("--method", default="minmax", choices=("minmax", "entropy", "percentile"))
    p.add_argument("--exclude", default="", help="comma-separated node names kept in float")
    p.add_argument("--accuracy-aware", action="store_true")
    p.add_argument("--max-drop", type=float, default=0.01, help="max relative drop of the fidelity metric")
    p.add_argument("--modelopt", action="store_true", help="quantize with NVIDIA ModelOpt (if installed)")


def make_preprocess(model: Path, name: str, shape: str | None):  # type: ignore[no-untyped-def]
    """A ``bgr -> feeds`` callable for the model's single image input."""
    from ..inference.factory import open_engine
    from ..modelops.precision import resize_preprocess

    spec = open_engine(model).input()
    h, w = (int(v) for v in shape.lower().split("x")) if shape else (spec.shape[2], spec.shape[3])
    if not isinstance(h, int) or not isinstance(w, int):
        raise SystemExit(f"{model.name}: input {spec} is dynamic; give --shape HxW")
    if name == "resize":
        return resize_preprocess(spec.name, w, h)
    from ..vision.preprocess import Preprocessor, preset

    pre = Preprocessor(preset(name, width=w, height=h), batch=1)
    return lambda bgr: {spec.name: pre(bgr, 0)[0].copy()}


def run(args: argparse.Namespace) -> int:
    from ..inference.engine import EngineError
    from ..modelops import precision as P

    model = Path(args.model)
    if not (args.fp16 or args.int8):
        print("nothing to do: give --fp16 OUT and/or --int8 OUT", file=sys.stderr)
        return 2
    try:
        if args.fp16:
            print(f"FP16 -> {P.to_fp16(model, args.fp16)}")
        if not args.int8:
            return 0
        if args.calib_images:
            images = list(P.images_from_folder(args.calib_images, args.count))
        elif args.calib_bag:
            images = list(P.images_from_bag(args.calib_bag, args.calib_topic, args.count))
        else:
            print("--int8 needs --calib-images or --calib-bag", file=sys.stderr)
            return 2
        feeds = P.calibration_feeds(images, make_preprocess(model, args.preprocess, args.shape))
        exclude = [n for n in args.exclude.split(",") if n]
        if not args.accuracy_aware:
            P.quantize_int8(
                model,
                args.int8,
                feeds,
                target=args.target,
                nodes_to_exclude=exclude,
                calibrate_method=args.method,
                method="modelopt" if args.modelopt else "onnxruntime",
            )
            print(f"INT8 Q/DQ ({args.target}, {len(feeds)} calibration images) -> {args.int8}")
            return 0
        half = max(1, len(feeds) // 2)
        calib, held_out = feeds[:half], feeds[half:] or feeds
        report = P.quantize_int8_accuracy_aware(
            model,
            args.int8,
            calib,
            _fidelity(model, held_out),
            max_drop=args.max_drop,
            relative=True,
            target=args.target,
            calibrate_method=args.method,
            on_step=lambda s: print(
                f"step {s.step}: {len(s.excluded)} in float, metric {s.metric:.5f}, "
                f"drop {100 * s.relative_drop:.2f}%"
            ),
        )
        print(report.table())
        Path(args.int8).with_suffix(".report.json").write_text(report.to_json())
        return 0 if report.met else 1
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _fidelity(reference: Path, feeds: list[dict[str, np.ndarray]]):  # type: ignore[no-untyped-def]
    from ..inference.factory import open_engine

    ref = open_engine(reference)
    refs = [{k: v.copy() for k, v in ref.infer(f).items()} for f in feeds]

    def metric(path: Path) -> float:
        engine = open_engine(path)
        errs = []
        for f, r in zip(feeds, refs):
            out = engine.infer(f)
            errs += [
                float(np.mean((out[k] - v) ** 2) / max(float(np.mean(v**2)), 1e-12)) for k, v in r.items()
            ]
        return 1.0 - float(np.mean(errs))

    return metric
