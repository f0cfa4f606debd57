"""``trt-perception quantize``: FP16 and INT8 (default or accuracy-aware) copies, judged by the task metric.

    trt-perception quantize models/detector.onnx --fp16 models/detector.fp16.onnx
    trt-perception quantize models/detector.onnx --int8 models/detector.int8.onnx \\
        --calib-bag data/sample_bag --val data/val
    trt-perception quantize models/detector.onnx --int8 out.onnx --calib-bag data/sample_bag \\
        --val data/val --accuracy-aware --max-drop 0.01
    trt-perception quantize models/plate_reader_ctc.onnx --backend openvino --int8 out.xml \\
        --calib-bag data/sample_bag --val data/val --task plates --accuracy-aware

``--backend onnxruntime`` (default) writes ONNX Q/DQ (``--target tensorrt``: what a Jetson builds its
INT8 engine from; ``cpu``: ONNX Runtime's fast x86 kernels); ``--backend openvino`` writes an OpenVINO
IR through NNCF (``nncf.quantize`` / ``nncf.quantize_with_accuracy_control``).

``--val`` is a held-out COCO folder (not the calibration data): the task metric (mAP@[.5:.95] for
detection, exact match for plates, mIoU for segmentation, MSE of (v, w) for regression; ``--task``,
guessed from the model's metadata) of the original and of the copy is printed, and
``--accuracy-aware`` keeps layers in float until its relative drop is within ``--max-drop``, printing
each step: the layers in float and the metric before and after.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.sources import Frame
from ..evaluation.task_metric import check_held_out, task_metric, task_of_model
from ..evaluation.tasks import EvalConfig
from ..inference.engine import EngineError
from ..inference.factory import open_engine
from ..modelops import nncf_recipes, precision
from ..vision.preprocess import Preprocessor, preset

TASKS = ("detection", "plates", "segmentation", "regression")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="FP32 ONNX model")
    p.add_argument("--fp16", metavar="OUT", help="write an FP16 copy (FP32 inputs/outputs kept)")
    p.add_argument("--int8", metavar="OUT", help="write an INT8 copy (static calibration)")
    p.add_argument(
        "--backend",
        default="onnxruntime",
        choices=("onnxruntime", "openvino"),
        help="onnxruntime: ONNX (FP16 / Q/DQ); openvino: OpenVINO IR through NNCF",
    )
    p.add_argument("--calib-images", help="folder of calibration images")
    p.add_argument("--calib-bag", help="rosbag2 folder with sensor_msgs/Image calibration frames")
    p.add_argument("--calib-topic", default="/camera/image_raw")
    p.add_argument("--count", type=int, default=64, help="calibration images to use")
    p.add_argument(
        "--preprocess",
        default="",
        help="calibration pre-processing: the task stage's own (default with --val); "
        "resize (plain resize, RGB, /255) or a vision.preprocess preset: yolo | ssd_tf | imagenet | pilotnet",
    )
    p.add_argument("--shape", help="network input HxW for dynamic models, e.g. 352x640")
    p.add_argument(
        "--target",
        default="tensorrt",
        choices=("tensorrt", "cpu"),
        help="ONNX Q/DQ: tensorrt (symmetric INT8 activations) or cpu (UINT8 activations, fast ORT x86 kernels)",
    )
    p.add_argument("--method", default="minmax", choices=("minmax", "entropy", "percentile"))
    p.add_argument("--exclude", default="", help="comma-separated node names kept in float")
    p.add_argument("--val", help="held-out COCO folder (annotations.json + images/) for the task metric")
    p.add_argument("--val-count", type=int, default=0, help="validation images to use (0: all)")
    p.add_argument("--task", choices=TASKS, help="task of the metric (default: from the model's metadata)")
    p.add_argument(
        "--accuracy-aware", action="store_true", help="keep layers in float until --max-drop holds"
    )
    p.add_argument("--max-drop", type=float, default=0.01, help="max relative drop of the task metric")
    p.add_argument("--max-steps", type=int, default=20, help="accuracy-aware steps at most")
    p.add_argument("--modelopt", action="store_true", help="quantize with NVIDIA ModelOpt (if installed)")


def make_preprocess(model: Path, name: str, shape: str | None):  # type: ignore[no-untyped-def]
    """A ``bgr -> feeds`` callable for the model's single image input."""
    spec = open_engine(model).input()
    h, w = (int(v) for v in shape.lower().split("x")) if shape else (spec.shape[2], spec.shape[3])
    if not isinstance(h, int) or not isinstance(w, int):
        raise SystemExit(f"{model.name}: input {spec} is dynamic; give --shape HxW")
    if name == "resize":
        return precision.resize_preprocess(spec.name, w, h)
    pre = Preprocessor(preset(name, width=w, height=h), batch=1)
    return lambda bgr: {spec.name: pre(bgr, 0)[0].copy()}


def run(args: argparse.Namespace) -> int:
    if not (args.fp16 or args.int8):
        print("nothing to do: give --fp16 OUT and/or --int8 OUT", file=sys.stderr)
        return 2
    if args.int8 and not (args.calib_images or args.calib_bag):
        print("--int8 needs --calib-images or --calib-bag", file=sys.stderr)
        return 2
    if args.accuracy_aware and not args.val:
        print("--accuracy-aware needs --val: a held-out set to measure the task metric on", file=sys.stderr)
        return 2
    try:
        return _run(args)
    except (EngineError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    model = Path(args.model)
    metric, reference = None, float("nan")
    if args.val:
        check_held_out(args.val, args.calib_images or args.calib_bag)
        task = args.task or task_of_model(model)
        if not task:
            raise ValueError(f"{model.name}: its metadata names no task; give --task ({', '.join(TASKS)})")
        metric = task_metric(task, args.val, args.val_count)
        metric.backend = args.backend
        print(f"task metric: {task} {metric.name} on {len(metric.frames)} held-out images of {args.val}")
        reference = metric(model)
        print(f"FP32 ({args.backend}): {metric.name} {reference:.4f}")
    if args.fp16:
        out = _fp16(model, Path(args.fp16), args.backend)
        _print_metric("FP16", out, metric)
    if not args.int8:
        return 0
    images = (
        list(precision.images_from_folder(args.calib_images, args.count))
        if args.calib_images
        else list(precision.images_from_bag(args.calib_bag, args.calib_topic, args.count))
    )
    feeds = _calibration(model, images, args, metric)
    exclude = [n for n in args.exclude.split(",") if n]
    if not args.accuracy_aware:
        out = _int8(model, Path(args.int8), feeds, exclude, args)
        print(f"INT8 ({args.backend}, {len(feeds)} calibration images) -> {out}")
        _print_metric("INT8", out, metric)
        return 0
    assert metric is not None  # run() checked --val
    report = _accuracy_aware(model, Path(args.int8), feeds, exclude, (metric, reference), args)
    print(report.table())
    Path(report.output).with_suffix(".report.json").write_text(report.to_json())
    print(f"INT8 accuracy-aware -> {report.output} (limit {'met' if report.met else 'NOT met'})")
    return 0 if report.met else 1


def _fp16(model: Path, out: Path, backend: str) -> Path:
    if backend == "openvino":
        out = nncf_recipes.openvino_fp16(model, out)
    else:
        precision.to_fp16(model, out)
    print(f"FP16 ({backend}) -> {out}")
    return out


def _int8(model: Path, out: Path, feeds: list[dict[str, np.ndarray]], exclude: list[str], args: Any) -> Path:
    if args.backend == "openvino":
        return nncf_recipes.openvino_int8(model, out, feeds, exclude)
    precision.quantize_int8(
        model,
        out,
        feeds,
        target=args.target,
        nodes_to_exclude=exclude,
        calibrate_method=args.method,
        method="modelopt" if args.modelopt else "onnxruntime",
    )
    return out


def _accuracy_aware(
    model: Path,
    out: Path,
    feeds: list[dict[str, np.ndarray]],
    exclude: list[str],
    judged: tuple[Any, float],
    args: Any,
) -> Any:
    """The accuracy-aware INT8 of the backend; ``judged``: (task metric, its FP32 value)."""
    metric, reference = judged

    def show(s: Any) -> None:
        kept = ", ".join(s.excluded) or "none"
        print(
            f"step {s.step}: {metric.name} before {reference:.4f} (FP32), after {s.metric:.4f} "
            f"(drop {100 * s.relative_drop:+.2f}%); in float: {kept}",
            flush=True,
        )

    if args.backend == "openvino":
        return nncf_recipes.openvino_int8_accuracy_aware(
            model,
            out,
            feeds,
            metric.frames,
            metric.of_engine,
            max_drop=args.max_drop,
            higher_is_better=metric.higher_is_better,
            max_steps=args.max_steps,
            ignored=exclude,
            on_step=show,
        )
    return precision.quantize_int8_accuracy_aware(
        model,
        out,
        feeds,
        metric,
        max_drop=args.max_drop,
        relative=True,
        higher_is_better=metric.higher_is_better,
        max_steps=args.max_steps,
        target=args.target,
        calibrate_method=args.method,
        on_step=show,
    )


def _calibration(
    model: Path, images: list[np.ndarray], args: Any, metric: Any
) -> list[dict[str, np.ndarray]]:
    """Engine inputs for calibration: the task stage's own ``encode`` when the task is known (exactly
    what the deployed stage feeds), else ``--preprocess`` (default resize)."""
    if metric is not None and not args.preprocess:
        frames = [Frame(i, -1 - i, 0, img, f"calibration {i}") for i, img in enumerate(images)]
        return metric.task.calibration_feeds(EvalConfig("calibration", model), frames)
    return precision.calibration_feeds(
        images, make_preprocess(model, args.preprocess or "resize", args.shape)
    )


def _print_metric(label: str, path: Path, metric: Any) -> None:
    if metric is not None:
        print(f"{label}: {metric.name} {metric(path):.4f}")
