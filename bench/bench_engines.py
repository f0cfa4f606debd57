"""Engine precision benchmark: FP32 / FP16 / INT8 Q/DQ (default and accuracy-aware) on ONNX Runtime CPU.

For every sample model in ``models/`` this makes the FP16 and INT8 copies with
``trt_perception.modelops.precision``, measures pure engine latency (``Engine.infer`` on one
pre-processed input: mean, std, min, max, median, FPS) and the task metric of each copy on the
sample validation set through the real runtime stage (the seeds' tables: latency mean/std + accuracy):

=================  ==========================  ===========================================
model              metric                      data
=================  ==========================  ===========================================
detector           COCO mAP@[.5:.95] (pycocotools)  data/val (120 images), Detector stage
plate_reader_*     exact match                 plate crops of data/val, PlateReader.read_crops
segmenter          mIoU                        data/val masks, Segmenter stage (argmax=cpu)
pilotnet           MSE of (v, w)               simulator samples (tools.train_pilotnet.collect)
=================  ==========================  ===========================================

Calibration uses other frames than validation: the sample bag's camera topic (data/sample_bag),
through the same stage so the calibration tensors are exactly what the stage feeds the engine.
Target: detector INT8 (accuracy-aware) >= 2x faster than FP32 with <= 1% relative mAP loss.
Latency rounds are interleaved across recipes (a noisy neighbour hits all alike); speed-ups are ratios
of 10th-percentile latencies measured in the same run (robust to a shared machine's interruptions).

    .venv/bin/python -m bench.bench_engines [--models detector segmenter] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import machine, target
from trt_perception.inference.engine import Engine, TensorSpec
from trt_perception.inference.onnxruntime_backend import OnnxRuntimeEngine
from trt_perception.metrics.latency import describe

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
DATA = ROOT / "data"
RESULTS = ROOT / "bench" / "results" / "engines.json"
INT8_SPEEDUP_TARGET = 2.0
MAX_REL_LOSS = 0.01


class Recording(Engine):
    """Passes calls to ``inner`` and keeps copies of the feeds (the stage's exact engine inputs)."""

    backend = "recording"

    def __init__(self, inner: Engine) -> None:
        super().__init__(inner.path)
        self.inner = inner
        self.feeds: list[dict[str, np.ndarray]] = []

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.inner.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.inner.outputs

    @property
    def metadata(self) -> dict[str, str]:
        return self.inner.metadata

    def _infer(self, feeds: Mapping[str, np.ndarray], outputs_on_device: bool) -> dict[str, np.ndarray]:
        self.feeds.append({k: np.array(v, copy=True) for k, v in feeds.items()})
        return self.inner.infer(feeds, outputs_on_device)


@dataclass
class Task:
    name: str
    onnx: Path
    metric: str
    higher_is_better: bool
    #: engine -> callable that consumes one sample (a frame or crop list)
    make_stage: Callable[[Engine], Callable[[Any], Any]]
    calibration_samples: Callable[[], list[Any]]
    evaluate: Callable[[Engine], float]


# -- data -------------------------------------------------------------------------------------------


def val_coco() -> dict[str, Any]:
    return json.loads((DATA / "val" / "annotations.json").read_text())


def val_images() -> list[tuple[dict[str, Any], np.ndarray]]:
    import cv2

    coco = val_coco()
    return [(im, cv2.imread(str(DATA / "val" / "images" / im["file_name"]))) for im in coco["images"]]


def bag_frames(limit: int) -> list[np.ndarray]:
    from trt_perception.modelops.precision import images_from_bag

    return list(images_from_bag(DATA / "sample_bag", "/camera/image_raw", limit))


def bag_plate_crops(limit: int) -> list[np.ndarray]:
    """Plate crops of the bag frames (ground truth from data/sample_bag_gt.json, keyed by stamp)."""
    from trt_perception.io.bags import Bag
    from trt_perception.io.images import image_to_bgr
    from trt_perception.io.stamps import stamp_ns

    gt = json.loads((DATA / "sample_bag_gt.json").read_text())
    by_stamp = {im["stamp_ns"]: im["id"] for im in gt["images"]}
    plate_cat = next(c["id"] for c in gt["categories"] if c["name"] == "plate")
    boxes: dict[int, list[list[float]]] = {}
    for a in gt["annotations"]:
        if a["category_id"] == plate_cat:
            boxes.setdefault(a["image_id"], []).append(a["bbox"])
    crops: list[np.ndarray] = []
    with Bag(DATA / "sample_bag") as bag:
        for _, msg in bag.decoded(["/camera/image_raw"]):
            stamp = stamp_ns(msg.header)
            img = image_to_bgr(msg)
            for x, y, w, h in boxes.get(by_stamp.get(stamp, -1), []):
                if w >= 8 and h >= 4:
                    crops.append(np.ascontiguousarray(img[int(y) : int(y + h), int(x) : int(x + w)]))
            if len(crops) >= limit:
                break
    return crops[:limit]


# -- tasks ------------------------------------------------------------------------------------------


def detector_task(models: Path, quick: bool) -> Task:
    from trt_perception.metrics.coco import detections_to_coco, evaluate_coco
    from trt_perception.stages.detector import Detector, DetectorConfig

    onnx = models / "detector.onnx"
    labels = models / "detector_labels.txt"
    cfg = DetectorConfig(model=str(onnx), labels=str(labels) if labels.is_file() else "", conf_threshold=0.01)
    coco = val_coco()
    images = val_images()[: 40 if quick else None]
    cat_by_name = {c["name"]: c["id"] for c in coco["categories"]}

    def make(engine: Engine) -> Callable[[Any], Any]:
        return Detector(cfg, engine=engine)

    def evaluate(engine: Engine) -> float:
        det = Detector(cfg, engine=engine)
        results: list[dict[str, Any]] = []
        for im, img in images:
            d = det(img)
            cats = np.array([cat_by_name.get(d.labels[c], -1) for c in d.class_ids], np.int64)
            results += detections_to_coco(im["id"], d.boxes, d.scores, cats)
        return evaluate_coco(coco, results, image_ids=[im["id"] for im, _ in images]).map

    return Task(
        "detector", onnx, "mAP@[.5:.95]", True, make, lambda: bag_frames(24 if quick else 48), evaluate
    )


def plate_task(models: Path, name: str, decoder: str, quick: bool) -> Task:
    from tools.make_samples import val_plate_crops
    from trt_perception.metrics.plates import score_plates
    from trt_perception.stages.plate_reader import PlateReader, PlateReaderConfig

    onnx = models / f"{name}.onnx"
    charset = models / "plate_charset.txt"
    cfg = PlateReaderConfig(
        model=str(onnx), decoder=decoder, charset=str(charset) if charset.is_file() else ""
    )
    crops, texts = val_plate_crops(PlateReader(cfg), DATA)
    if quick:
        crops, texts = crops[:60], texts[:60]

    def make(engine: Engine) -> Callable[[Any], Any]:
        reader = PlateReader(cfg, engine=engine)
        return lambda crop: reader.read_crops([crop])

    def evaluate(engine: Engine) -> float:
        reader = PlateReader(cfg, engine=engine)
        preds = [t for t, _ in reader.read_crops(crops)]
        return score_plates(preds, texts).exact_match

    return Task(name, onnx, "exact match", True, make, lambda: bag_plate_crops(48 if quick else 96), evaluate)


def segmenter_task(models: Path, quick: bool) -> Task:
    import cv2

    from trt_perception.metrics.segmentation import confusion_matrix, mean_iou
    from trt_perception.stages.segmenter import Segmenter, SegmenterConfig

    onnx = models / "segmenter.onnx"
    cfg = SegmenterConfig(model=str(onnx), argmax="cpu", input_width=640, input_height=352)
    coco = val_coco()
    images = val_images()[: 30 if quick else None]
    classes = len(coco.get("segmentation_classes", [])) or 4
    masks = [
        cv2.imread(str(DATA / "val" / "masks" / (Path(im["file_name"]).stem + ".png")), cv2.IMREAD_GRAYSCALE)
        for im, _ in images
    ]

    def make(engine: Engine) -> Callable[[Any], Any]:
        return Segmenter(cfg, engine=engine)

    def evaluate(engine: Engine) -> float:
        seg = Segmenter(cfg, engine=engine)
        cm = np.zeros((classes, classes), np.int64)
        for (_im, img), gt in zip(images, masks):
            cm += confusion_matrix(gt, seg(img).mask, classes)
        return mean_iou(cm)

    return Task("segmenter", onnx, "mIoU", True, make, lambda: bag_frames(16 if quick else 32), evaluate)


def pilotnet_task(models: Path, quick: bool) -> Task:
    onnx = models / "pilotnet.onnx"
    sys.path.insert(0, str(ROOT))
    from tools.train_pilotnet import collect

    images, labels = collect(2000, 10 if quick else 30, 5.0 if quick else 10.0)
    calib_images, _ = collect(3000, 5, 4.0)

    def to_tensor(rgb: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(rgb.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)

    def make(engine: Engine) -> Callable[[Any], Any]:
        return lambda img: engine.infer({"image": to_tensor(img[None])})

    def evaluate(engine: Engine) -> float:
        preds = np.concatenate(
            [engine.infer({"image": to_tensor(images[i : i + 1])})["cmd"].copy() for i in range(len(images))]
        )
        return float(np.mean((preds - labels) ** 2))

    return Task("pilotnet", onnx, "MSE (v, w)", False, make, lambda: list(calib_images[:64]), evaluate)


def tasks(selected: Sequence[str], quick: bool, models: Path = MODELS) -> tuple[list[Task], dict[str, str]]:
    makers: dict[str, Callable[[], Task]] = {
        "detector": lambda: detector_task(models, quick),
        "plate_reader_ctc": lambda: plate_task(models, "plate_reader_ctc", "ctc", quick),
        "plate_reader_heads": lambda: plate_task(models, "plate_reader_heads", "heads", quick),
        "segmenter": lambda: segmenter_task(models, quick),
        "pilotnet": lambda: pilotnet_task(models, quick),
    }
    out, skipped = [], {}
    for name in selected:
        if not (models / f"{name}.onnx").is_file():
            skipped[name] = f"models/{name}.onnx not found"
            continue
        try:
            out.append(makers[name]())
        except Exception as exc:  # a missing stage/metric of another helper: say what could not be measured
            skipped[name] = f"{type(exc).__name__}: {exc}"
    return out, skipped


# -- measuring --------------------------------------------------------------------------------------


def open_timed(path: Path, backend: str, threads: int) -> Engine:
    """``path`` on ``backend`` with ``threads`` compute threads (the same budget for every backend)."""
    from trt_perception.inference.factory import open_engine

    if backend == "openvino":
        return open_engine(path, "openvino", threads=threads)
    return OnnxRuntimeEngine(path, intra_op_threads=threads)


def time_engine(
    path: Path,
    feeds: dict[str, np.ndarray],
    min_iters: int,
    max_s: float,
    threads: int,
    backend: str = "onnxruntime",
) -> list[float]:
    """Per-call latencies (ms) of ``Engine.infer`` after a warm-up."""
    engine = open_timed(path, backend, threads)
    for _ in range(5):
        engine.infer(feeds)
    samples: list[float] = []
    start = time.monotonic()
    while len(samples) < min_iters or (time.monotonic() - start < max_s and len(samples) < 2000):
        engine.infer(feeds)
        samples.append(engine.last_latency_ms)
        if time.monotonic() - start > 4 * max_s:
            break
    return samples


def stats(samples: Sequence[float]) -> dict[str, float]:
    d = describe(samples)
    keys = ("mean_ms", "std_ms", "min_ms", "max_ms", "median_ms", "p10_ms", "fps")
    return {**{k: d[k] for k in keys}, "iterations": d["count"]}


def interleaved_latency(
    paths: dict[str, Path],
    feeds: dict[str, np.ndarray],
    rounds: int,
    min_iters: int,
    max_s: float,
    threads: int,
    backends: dict[str, str] | None = None,
) -> dict[str, dict[str, float]]:
    """Short rounds per recipe, interleaved, so a noisy neighbour hits every recipe alike; the samples
    of all rounds are pooled. ``backends``: recipe -> backend (default ONNX Runtime)."""
    per: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(rounds):
        for k, p in paths.items():
            backend = (backends or {}).get(k, "onnxruntime")
            per[k] += time_engine(p, feeds, min_iters, max_s / rounds, threads, backend)
    return {k: stats(v) for k, v in per.items()}


def bench_task(task: Task, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from trt_perception.modelops import precision as P

    print(f"== {task.name}", flush=True)
    t0 = time.monotonic()
    rec = Recording(OnnxRuntimeEngine(task.onnx))
    stage = task.make_stage(rec)
    for sample in task.calibration_samples():
        stage(sample)
    calib = rec.feeds
    if not calib:
        raise RuntimeError("the stage made no engine calls on the calibration samples")
    bench_feeds = calib[0]
    variants = {
        "fp32": task.onnx,
        "fp16": work / f"{task.name}.fp16.onnx",
        "int8": work / f"{task.name}.int8.onnx",
    }
    P.to_fp16(task.onnx, variants["fp16"])
    P.quantize_int8(task.onnx, variants["int8"], calib, target="cpu")
    print(f"   recipes ready ({len(calib)} calibration inputs, {time.monotonic() - t0:.0f} s)", flush=True)

    metrics: dict[str, float] = {}
    for k, p in variants.items():
        metrics[k] = task.evaluate(OnnxRuntimeEngine(p, intra_op_threads=args.threads))
        print(f"   {k}: {task.metric} {metrics[k]:.4f}", flush=True)

    def evaluate_path(p: Path) -> float:
        return task.evaluate(OnnxRuntimeEngine(p, intra_op_threads=args.threads))

    aa_path = work / f"{task.name}.int8_aa.onnx"
    report = P.quantize_int8_accuracy_aware(
        task.onnx,
        aa_path,
        calib,
        evaluate_path,
        max_drop=MAX_REL_LOSS,
        relative=True,
        higher_is_better=task.higher_is_better,
        max_steps=args.max_steps,
        target="cpu",
        on_step=lambda s: print(
            f"   accuracy-aware step {s.step}: {len(s.excluded)} in float, "
            f"{task.metric} {s.metric:.4f}, rel. drop {100 * s.relative_drop:.2f}%",
            flush=True,
        ),
    )
    variants["int8_accuracy_aware"] = aa_path
    # The Q/DQ ONNX a Jetson would build its INT8 engine from (symmetric INT8, Q/DQ on conv/matmul
    # inputs): its accuracy here is the ONNX-level check of that recipe; its CPU latency is not its target.
    trt_path = work / f"{task.name}.int8_tensorrt.onnx"
    P.quantize_int8(task.onnx, trt_path, calib, target="tensorrt")
    trt_metric = task.evaluate(OnnxRuntimeEngine(trt_path, intra_op_threads=args.threads))
    trt_drop = (metrics["fp32"] - trt_metric) if task.higher_is_better else (trt_metric - metrics["fp32"])
    print(f"   int8 (TensorRT recipe): {task.metric} {trt_metric:.4f}", flush=True)
    metrics["int8_accuracy_aware"] = (
        report.steps[-1].metric if report.met else min((s for s in report.steps), key=lambda s: s.drop).metric
    )
    latency = interleaved_latency(
        variants, bench_feeds, args.rounds, args.min_iters, args.seconds, args.threads
    )
    # Speed-ups from 10th percentiles: on a shared machine the mean and even the median carry other
    # processes' interruptions; the fast tail is the engine's own time.
    fp32_ms, fp32_metric = latency["fp32"]["p10_ms"], metrics["fp32"]
    rows = {}
    for k, path in variants.items():
        drop = (fp32_metric - metrics[k]) if task.higher_is_better else (metrics[k] - fp32_metric)
        rows[k] = {
            "latency": latency[k],
            "metric": metrics[k],
            "relative_loss": drop / abs(fp32_metric) if fp32_metric else 0.0,
            "speedup_vs_fp32": fp32_ms / latency[k]["p10_ms"],
            "size_bytes": path.stat().st_size,
        }
    print(f"   done in {time.monotonic() - t0:.0f} s", flush=True)
    return {
        "onnx": str(task.onnx.relative_to(ROOT)) if task.onnx.is_relative_to(ROOT) else str(task.onnx),
        "metric": task.metric,
        "higher_is_better": task.higher_is_better,
        "input": {k: list(v.shape) for k, v in bench_feeds.items()},
        "calibration_inputs": len(calib),
        "variants": rows,
        "int8_tensorrt_recipe": {
            "metric": trt_metric,
            "relative_loss": trt_drop / abs(metrics["fp32"]) if metrics["fp32"] else 0.0,
        },
        "accuracy_aware": {
            "met": report.met,
            "excluded": report.steps[-1].excluded,
            "steps": [vars(s) for s in report.steps],
            "ranking": report.ranking[:10],
        },
    }


def table(results: dict[str, Any]) -> str:
    lines = [
        "| model | recipe | mean (ms) | std (ms) | median (ms) | p10 (ms) | min (ms) | max (ms) | FPS | metric | value | rel. loss | speed-up (p10) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    names = {
        "fp32": "FP32",
        "fp16": "FP16",
        "int8": "INT8 Q/DQ",
        "int8_accuracy_aware": "INT8 accuracy-aware",
    }
    for model, r in results.items():
        for k, v in r["variants"].items():
            lat = v["latency"]
            lines.append(
                f"| {model} | {names[k]} | {lat['mean_ms']:.2f} | {lat['std_ms']:.2f} | {lat['median_ms']:.2f} | {lat['p10_ms']:.2f} | "
                f"{lat['min_ms']:.2f} | {lat['max_ms']:.2f} | {lat['fps']:.0f} | {r['metric']} | "
                f"{v['metric']:.4f} | {100 * v['relative_loss']:+.2f}% | {v['speedup_vs_fp32']:.2f}x |"
            )
    lines += [
        "",
        "| model | INT8 Q/DQ TensorRT recipe (symmetric, conv/matmul inputs): metric | rel. loss |",
        "|---|---|---|",
    ]
    for model, r in results.items():
        t = r["int8_tensorrt_recipe"]
        lines.append(f"| {model} | {t['metric']:.4f} | {100 * t['relative_loss']:+.2f}% |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--models",
        nargs="*",
        default=["detector", "plate_reader_ctc", "plate_reader_heads", "segmenter", "pilotnet"],
    )
    p.add_argument("--quick", action="store_true", help="fewer validation samples (a smoke run)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="ONNX Runtime intra-op threads (1: a second thread on a shared 2-core box only adds noise)",
    )
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-iters", type=int, default=20)
    p.add_argument("--seconds", type=float, default=6.0, help="timing budget per variant (split over rounds)")
    p.add_argument("--max-steps", type=int, default=8, help="accuracy-aware steps at most")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--models-dir", type=Path, default=MODELS, help="where the sample models are")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import logging

    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization's advice on stderr
    started = time.monotonic()
    selected, skipped = tasks(args.models, args.quick, args.models_dir)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_engines_") as tmp:
        for task in selected:
            try:
                results[task.name] = bench_task(task, Path(tmp), args)
            except Exception as exc:
                skipped[task.name] = f"{type(exc).__name__}: {exc}"
                print(f"   {task.name} skipped: {skipped[task.name]}", flush=True)
    targets = []
    det = results.get("detector")
    if det is not None:
        aa = det["variants"]["int8_accuracy_aware"]
        targets = [
            target(
                "detector INT8 accuracy-aware speed-up vs FP32 (ORT CPU)",
                round(aa["speedup_vs_fp32"], 3),
                ">=",
                INT8_SPEEDUP_TARGET,
                "x",
            ),
            target(
                "detector INT8 accuracy-aware relative mAP loss",
                round(aa["relative_loss"], 5),
                "<=",
                MAX_REL_LOSS,
            ),
        ]
    doc = {
        "benchmark": "engines",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "models": results,
        "not_measured": skipped,
        "targets": targets,
        "table_markdown": table(results),
        "seconds": round(time.monotonic() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, default=float))
    print(doc["table_markdown"])
    for t in targets:
        print(f"{t['name']}: {t['value']} (target {t['target']}) {'PASS' if t['pass'] else 'FAIL'}")
    for name, why in skipped.items():
        print(f"not measured: {name}: {why}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
