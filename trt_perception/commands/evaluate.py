"""``trt-perception evaluate``: how much faster is the optimized model, and what did it cost?

Runs one or more configurations (model x backend x precision) over the same frames of a COCO
dataset or a rosbag2 and writes ``report.md``, ``report.json``, ``report.csv`` and plots into ``--out``.

Examples::

  # FP32 reference vs FP16 vs INT8 Q/DQ copies of one detector, on the validation set
  trt-perception evaluate --task detection --dataset data/val --model models/detector.onnx \\
      --precisions fp32,fp16,int8 --out reports/detector

  # tracking + per-vehicle plates on a sequence with identities (MOTA, IDF1, ID switches, plate exact match)
  trt-perception evaluate --task tracking --dataset data/traffic --model models/detector.onnx \\
      --reader models/plate_reader_ctc.onnx

  # existing COCO results files (any detector, any machine) against the ground truth: no model is run
  trt-perception evaluate --dataset data/val --results fp32=dets_fp32.json --results int8=dets_int8.json

  # the deployed node settings, on a bag, ground truth from a topic recorded in it
  trt-perception evaluate --bag data/sample_bag --image-topic /camera/image_raw \\
      --gt-topic /ground_truth/detections --config config/detector.yaml --model fast=detector_int8.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from ..evaluation.configs import (
    config_from_file,
    derive_precisions,
    parse_model_arg,
    stage_fields,
    tensorrt_config,
)
from ..evaluation.report import scores_markdown, write_report
from ..evaluation.runner import evaluate
from ..evaluation.sources import BagSource, CocoFolderSource, Frame, Source
from ..evaluation.tasks import EvalConfig, Task, make_task
from ..inference.engine import EngineError
from ..inference.factory import BACKENDS, tensorrt_available, tensorrt_unavailable_reason
from ..io.bags import BagReadError
from ..modelops.precision import images_from_folder


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = __doc__.split("Examples::", 1)[1] if __doc__ else None
    p.add_argument(
        "--task",
        default="detection",
        choices=("detection", "plates", "segmentation", "regression", "tracking"),
    )
    src = p.add_argument_group("data (one of --dataset or --bag)")
    src.add_argument(
        "--dataset", type=Path, help="COCO annotations JSON, or a folder holding annotations.json"
    )
    src.add_argument("--images", type=Path, help="image folder (default: images/ next to the JSON)")
    src.add_argument(
        "--masks", type=Path, help="class-mask folder for segmentation (default: masks/ next to the JSON)"
    )
    src.add_argument("--bag", type=Path, help="rosbag2 folder (mcap or sqlite3) or a single .mcap/.db3 file")
    src.add_argument("--image-topic", default="/camera/image_raw", help="bag topic with sensor_msgs/Image")
    src.add_argument(
        "--gt", type=Path, help="COCO JSON whose images carry stamp_ns, matched to the bag's stamps"
    )
    src.add_argument("--gt-topic", help="bag topic with vision_msgs/Detection2DArray ground truth")
    src.add_argument("--mask-topic", help="bag topic with mono8 ground-truth class masks (segmentation)")
    src.add_argument("--limit", type=int, default=0, help="evaluate only the first N frames (0 = all)")
    cfg = p.add_argument_group("configurations (repeat --config / --model; the first one is the reference)")
    cfg.add_argument(
        "--config",
        action="append",
        default=[],
        type=Path,
        metavar="YAML",
        help="node parameter file (e.g. config/detector.yaml): model + stage settings",
    )
    cfg.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="ONNX model or TensorRT engine, optionally named for the report",
    )
    cfg.add_argument("--backend", default="auto", choices=BACKENDS)
    cfg.add_argument(
        "--results",
        action="append",
        default=[],
        type=str,
        metavar="[NAME=]JSON",
        help="detection: score a COCO results file against --dataset (no model); repeat to compare",
    )
    cfg.add_argument(
        "--precisions",
        default="",
        help="also evaluate FP16 / INT8 Q/DQ copies of each ONNX model, e.g. fp32,fp16,int8",
    )
    cfg.add_argument(
        "--tensorrt",
        action="store_true",
        help="also build and evaluate a TensorRT engine per ONNX configuration (where TensorRT exists)",
    )
    cfg.add_argument(
        "--int8-target",
        default="tensorrt",
        choices=("tensorrt", "cpu"),
        help="INT8 flavour: symmetric activations for TensorRT, or ONNX Runtime CPU kernels",
    )
    cfg.add_argument(
        "--calibration",
        type=Path,
        metavar="DIR",
        help="image folder to calibrate INT8 with (default: the first evaluated frames, with a warning)",
    )
    cfg.add_argument("--calibration-frames", type=int, default=32, help="frames used to calibrate INT8")
    cfg.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="stage option for every configuration (e.g. decoder=yolov5)",
    )
    cfg.add_argument(
        "--detector", type=Path, help="plates: detector model for an end-to-end (detect+read) run"
    )
    cfg.add_argument(
        "--reader", type=Path, help="tracking: plate reader model, for the per-vehicle plate scores"
    )
    cfg.add_argument(
        "--reference", help="configuration name the others are compared with (default: the first)"
    )
    met = p.add_argument_group("metrics and output")
    met.add_argument(
        "--conf-threshold",
        type=float,
        default=1e-2,
        help="detection score floor for mAP (default 1e-2; deployment thresholds lower mAP)",
    )
    met.add_argument(
        "--num-classes", type=int, default=0, help="segmentation classes (default: from the dataset)"
    )
    met.add_argument(
        "--warmup", type=int, default=3, help="untimed runs on the first frame per configuration"
    )
    met.add_argument("--out", type=Path, default=Path("eval_report"), help="report folder")
    met.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    met.add_argument("--quiet", action="store_true", help="no progress bars")


def _value(text: str) -> object:
    return yaml.safe_load(text)


def run(args: argparse.Namespace) -> int:
    def fail(msg: str) -> int:
        print(f"trt-perception evaluate: error: {msg}", file=sys.stderr)
        return 2

    if bool(args.dataset) == bool(args.bag):
        return fail("give exactly one of --dataset or --bag")
    if args.results:
        return _score_results(args, fail)
    if not args.config and not args.model:
        return fail("give at least one --config, --model or --results")
    try:
        source: Source
        if args.dataset:
            source = CocoFolderSource(args.dataset, args.images, args.masks, limit=args.limit)
        else:
            if args.task in ("detection", "plates", "tracking") and not (args.gt or args.gt_topic):
                return fail(f"--task {args.task} on a bag needs --gt JSON or --gt-topic")
            source = BagSource(
                args.bag, args.image_topic, args.gt, args.gt_topic, args.mask_topic, args.limit
            )
        kwargs: dict[str, object] = {}
        if args.task == "detection":
            kwargs["conf_threshold"] = args.conf_threshold
        if args.task == "segmentation":
            kwargs["num_classes"] = args.num_classes
        if args.task == "tracking":
            kwargs["reader"] = args.reader
        task: Task = make_task(args.task, **kwargs)

        options = {}
        for item in args.option:
            key, sep, val = item.partition("=")
            if not sep:
                return fail(f"--option {item!r}: expected KEY=VALUE")
            options[key] = _value(val)
        bases: list[EvalConfig] = [config_from_file(c, stage_fields(args.task)) for c in args.config]
        bases += [parse_model_arg(m, args.backend) for m in args.model]
        for b in bases:
            b.options.update(options)
            b.detector = args.detector
            if not b.model.is_file():
                return fail(f"model not found: {b.model}")
        configs = _expand(bases, args, source, task)
    except (OSError, ValueError, BagReadError, EngineError) as exc:
        return fail(str(exc))

    print(f"evaluating {len(configs)} configuration(s) on {source.description}", file=sys.stderr)
    result = evaluate(source, task, configs, args.reference, args.warmup, progress=not args.quiet)
    paths = write_report(result, args.out, plots=not args.no_plots)
    print(paths["markdown"].read_text())
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print("report: " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    failed = [r for r in result.results if r.error and not r.frames]
    return 1 if len(failed) == len(result.results) else 0


def _expand(bases, args, source, task):  # type: ignore[no-untyped-def]
    """Each base configuration, or its FP32/FP16/INT8 family when ``--precisions`` is given; with
    ``--tensorrt`` each ONNX one is followed by its TensorRT engine at the same precision."""
    families = _families(bases, args, source, task)
    flat = [c for _, family in families for c in family]
    if not args.tensorrt:
        return flat
    if not tensorrt_available():
        source.warnings.append(
            f"--tensorrt: {tensorrt_unavailable_reason()}; TensorRT configurations skipped"
        )
        return flat
    out = []
    for base, family in families:
        out += family
        for c in family:
            if c.model.suffix != ".onnx":
                continue
            try:
                print(f"building the TensorRT {c.precision} engine of {base.model.name} ...", file=sys.stderr)
                out.append(tensorrt_config(c, base.model, args.out / "engines"))
            except EngineError as exc:
                source.warnings.append(f"TensorRT {c.precision} engine of {base.model.name} not built: {exc}")
    return out


def _families(bases, args, source, task):  # type: ignore[no-untyped-def]
    if not args.precisions:
        return [(b, [b]) for b in bases]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    frames: list = []

    def calibration_for(cfg):  # type: ignore[no-untyped-def]
        def make() -> list:
            if not frames:
                if args.calibration:
                    for i, bgr in enumerate(images_from_folder(args.calibration, args.calibration_frames)):
                        frames.append(Frame(index=i, image_id=-1, stamp_ns=0, bgr=bgr))
                else:
                    for f in source.frames():
                        frames.append(f)
                        if len(frames) >= args.calibration_frames:
                            break
                    source.warnings.append(
                        f"INT8 calibrated on the first {len(frames)} evaluated frames (pass --calibration DIR "
                        "to keep calibration and test data apart)"
                    )
            return task.calibration_feeds(cfg, frames)

        return make

    return [
        (b, derive_precisions(b, precisions, args.out / "models", calibration_for(b), args.int8_target))
        for b in bases
    ]


def _score_results(args: argparse.Namespace, fail: Any) -> int:
    """COCO results files scored against ``--dataset`` side by side (the 12 COCO numbers, per-class AP)."""
    if args.task != "detection" or not args.dataset:
        return fail("--results scores COCO detections: it needs --task detection and --dataset")
    try:
        source = CocoFolderSource(args.dataset, limit=args.limit)
        task = make_task("detection", conf_threshold=args.conf_threshold)
        task.bind(source)
        scores: dict[str, dict[str, float]] = {}
        for item in args.results:
            name, _, path = item.rpartition("=") if "=" in item else ("", "", item)
            results = json.loads(Path(path).read_text())
            per_image: dict[int, list[Any]] = {int(im["id"]): [] for im in source.coco["images"]}
            for r in results:
                per_image.setdefault(int(r["image_id"]), []).append(r)
            scores[name or Path(path).stem] = task.score(source, per_image).metrics
    except (OSError, ValueError, KeyError) as exc:
        return fail(str(exc))
    text = scores_markdown(scores, reference=next(iter(scores)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results_scores.json").write_text(json.dumps(scores, indent=2))
    (args.out / "results_scores.md").write_text(text)
    print(text)
    return 0
