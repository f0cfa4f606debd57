"""Speed/accuracy reports: Markdown, JSON and CSV with the configurations side by side and each one's
change against the reference, plus PNG plots (precision-recall, latency histogram).

The Markdown follows the tables users know from the seeds: a summary row per configuration (model
size, the task's accuracy numbers, latency mean/std, FPS avg/min/max, speed-up), the 12 COCO numbers
as rows with one column per configuration, and the end-to-end vs inference-only split.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics.coco import COCO_STAT_LABELS
from ..modelops.precision import model_record
from .runner import EvalResult, machine_info

#: Metrics shown as percentages in Markdown (fractions everywhere else).
_PERCENT_PREFIXES = ("AP", "AR", "IoU", "mIoU", "exact_match", "char_accuracy", "pixel_accuracy", "cer")


#: Short names where a key alone is ambiguous: COCO's AP50 and VOC's mAP@0.5 differ in interpolation.
_SHORT_LABELS = {"AP50": "AP50 (COCO 101-point)", "AP50_VOC": COCO_STAT_LABELS["AP50_VOC"]}


def _is_percent(key: str) -> bool:
    return key.startswith(_PERCENT_PREFIXES)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _delta(key: str, value: float, ref: float) -> dict[str, float | None]:
    undefined = key.startswith(("AP", "AR")) and (value < 0 or ref < 0)  # pycocotools' -1 = no GT there
    if undefined or not (_finite(value) and _finite(ref)):
        return {"abs": None, "rel_pct": None}
    return {"abs": value - ref, "rel_pct": (value - ref) / abs(ref) * 100.0 if ref else None}


def to_dict(ev: EvalResult) -> dict[str, Any]:
    """The whole report as plain JSON-able data."""
    ref = ev.by_name(ev.reference)
    ref_metrics = ref.scores.metrics if ref.scores else {}
    ref_lat = ref.latency()
    configs = []
    for r in ev.results:
        metrics = r.scores.metrics if r.scores else {}
        lat = r.latency()
        deltas = {k: _delta(k, v, ref_metrics.get(k, float("nan"))) for k, v in metrics.items()}
        ref_mean = ref_lat["end_to_end"].get("mean_ms", float("nan"))
        mean = lat["end_to_end"].get("mean_ms", float("nan"))
        ref_inf = ref_lat["inference"].get("mean_ms", float("nan"))
        inf = lat["inference"].get("mean_ms", float("nan"))
        configs.append(
            {
                "name": r.config.name,
                "model": str(r.config.model),
                "backend": r.config.backend,
                "precision": r.config.precision,
                "model_size_mb": r.config.size_mb,
                # what the model is (labels, decoder, pre-processing, precision...) and where each fact came from
                "model_info": model_record(r.config.model),
                "frames": r.frames,
                "error": r.error or None,
                "metrics": metrics,
                "delta_vs_reference": deltas,
                "latency_ms": lat,
                "speedup_end_to_end": ref_mean / mean if _finite(mean) and mean > 0 else None,
                "speedup_inference": ref_inf / inf if _finite(inf) and inf > 0 else None,
                "wall_s": r.wall_s,
                "image_ids": sorted(int(i) for i in r.outputs),  # the frames these numbers cover
            }
        )
    return {
        "task": ev.task.name,
        "primary_metric": ev.task.primary,
        "source": ev.source.description,
        "frames": ev.frames,
        "reference": ev.reference,
        "started": ev.started,
        "warnings": ev.warnings,
        "conf_threshold": getattr(ev.task, "conf_threshold", None),
        "machine": machine_info(),
        "configurations": configs,
    }


def _fmt(key: str, v: Any, signed: bool = False) -> str:
    if not _finite(v):
        return "-"
    if key.startswith(("AP", "AR")) and v < 0 and not signed:
        return "n/a"  # pycocotools' -1: no ground truth in that area range
    sign = "+" if signed else ""
    if signed and _is_percent(key) and abs(v) < 5e-5:  # no "-0.00 %" below the shown precision
        v = 0.0
    if _is_percent(key):
        return f"{v * 100:{sign}.2f} %"
    if key in ("plates", "missed", "detections"):
        return f"{int(v):{sign}d}"
    return f"{v:{sign}.4g}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * len(header)) + " |"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def to_markdown(report: dict[str, Any], ev: EvalResult) -> str:
    cfgs = report["configurations"]
    ref = report["reference"]
    order = next((r.scores.order for r in ev.results if r.scores), [])
    primary = report["primary_metric"]
    lines = [f"# Evaluation: {report['task']}", ""]
    lines.append(
        f"Source: {report['source']}; {report['frames']} frames; reference: **{ref}**; {report['started']}."
    )
    if report.get("conf_threshold") is not None:
        lines.append(
            f"Detections scored down to confidence {report['conf_threshold']:g} (pycocotools, bbox)."
        )
    for w in report["warnings"]:
        lines.append(f"\n> **Warning:** {w}")
    for c in cfgs:
        if c["error"]:
            lines.append(f"\n> **{c['name']} failed:** {c['error']}")

    # Summary: one row per configuration (the thesis / BehaviorMetrics layout).
    headline = [k for k in order if not k.startswith(("AP[", "IoU[", "MSE["))][:3] if order else []
    if primary in order and primary not in headline:
        headline.insert(0, primary)
    header = [
        "Configuration",
        "Precision",
        "Size (MB)",
        *[_SHORT_LABELS.get(k, k) for k in headline],
        "Mean (ms)",
        "Std (ms)",
        "Inference (ms)",
        "FPS avg",
        "FPS min",
        "FPS max",
        "Speed-up",
        f"{primary} vs ref",
    ]
    rows = []
    for c in cfgs:
        e = c["latency_ms"]["end_to_end"]
        inf = c["latency_ms"]["inference"]
        d = c["delta_vs_reference"].get(primary, {})
        rows.append(
            [c["name"], c["precision"], f"{c['model_size_mb']:.3g}"]
            + [_fmt(k, c["metrics"].get(k)) for k in headline]
            + [
                f"{e.get('mean_ms', float('nan')):.2f}",
                f"{e.get('std_ms', float('nan')):.2f}",
                f"{inf['mean_ms']:.2f}" if inf else "-",
                f"{e.get('fps_avg', float('nan')):.1f}",
                f"{e.get('fps_min', float('nan')):.1f}",
                f"{e.get('fps_max', float('nan')):.1f}",
                f"{c['speedup_end_to_end']:.2f}x" if c["speedup_end_to_end"] else "-",
                "ref" if c["name"] == ref else _fmt(primary, d.get("abs"), signed=True),
            ]
        )
    lines += [
        "",
        "## Summary",
        "",
        *_table(header, rows),
        "",
        "Mean/Std/FPS: end-to-end per frame (pre-processing + inference + decoding); Inference: engine calls only.",
    ]

    # Accuracy rows x configuration columns, with the change against the reference.
    header = ["Metric"]
    for c in cfgs:
        header += [c["name"]] if c["name"] == ref else [c["name"], "Δ"]
    rows = []
    for k in order:
        row = [COCO_STAT_LABELS.get(k, k)]
        for c in cfgs:
            row.append(_fmt(k, c["metrics"].get(k)))
            if c["name"] != ref:
                row.append(_fmt(k, c["delta_vs_reference"].get(k, {}).get("abs"), signed=True))
        rows.append(row)
    lines += ["", "## Accuracy", "", *_table(header, rows)]

    # Latency: end-to-end vs inference-only.
    header = [
        "Configuration",
        "Clock",
        "Mean (ms)",
        "Median (ms)",
        "Std (ms)",
        "Min (ms)",
        "Max (ms)",
        "p95 (ms)",
        "FPS avg",
    ]
    rows = []
    for c in cfgs:
        for clock in ("end_to_end", "inference", "data_read"):
            s = c["latency_ms"].get(clock)
            if s:
                rows.append(
                    [c["name"], clock.replace("_", "-")]
                    + [
                        f"{s[k]:.2f}"
                        for k in ("mean_ms", "median_ms", "std_ms", "min_ms", "max_ms", "p95_ms")
                    ]
                    + [f"{s['fps_avg']:.1f}"]
                )
    lines += ["", "## Latency", "", *_table(header, rows), ""]
    lines.append(
        "end-to-end: the whole stage call (pre-processing, inference, decoding, NMS); inference: the "
        "engine calls alone; data-read: decoding the frame from the dataset or bag (outside both clocks)."
    )
    lines += ["", "## Models", "", *_table(["Configuration", "Model", "What it is (source)"], _model_rows(cfgs)), ""]
    m = report["machine"]
    lines.append(
        f"Machine: {m['processor']}, {m['platform']}, Python {m['python']}, ONNX Runtime "
        f"{m['onnxruntime']}, OpenVINO {m.get('openvino') or 'absent'}, TensorRT {m['tensorrt'] or 'absent'}."
    )
    return "\n".join(lines) + "\n"


def _model_rows(cfgs: list[dict[str, Any]]) -> list[list[str]]:
    """Each configuration's ModelInfo in one cell: precision, labels, decoder, pre-processing, input."""
    rows = []
    for c in cfgs:
        info = c.get("model_info") or {}
        facts = [_fact(k, info[k], info.get("sources", {}).get(k, "?")) for k in _MODEL_FACTS if info.get(k)]
        rows.append([c["name"], Path(c["model"]).name, "; ".join(facts) or "-"])
    return rows


_MODEL_FACTS = ("precision", "labels", "decoder", "preprocess", "input_size")


def _fact(name: str, value: Any, source: str) -> str:
    shown = f"{len(value)} entries" if isinstance(value, list) and len(value) > 8 else value
    return f"{name} {shown} ({source})"


def to_csv_rows(report: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """One row per configuration: identity, metrics, their change vs the reference, latency."""
    keys: list[str] = []
    for c in report["configurations"]:
        keys += [k for k in c["metrics"] if k not in keys]
    fields = ["name", "backend", "precision", "model", "model_size_mb", "frames", "error"]
    fields += keys + [f"delta_{k}" for k in keys]
    lat_keys = [
        "mean_ms",
        "std_ms",
        "min_ms",
        "max_ms",
        "median_ms",
        "p95_ms",
        "fps_avg",
        "fps_min",
        "fps_max",
    ]
    fields += [f"{clock}_{k}" for clock in ("end_to_end", "inference") for k in lat_keys]
    fields += ["speedup_end_to_end", "speedup_inference"]
    rows = []
    for c in report["configurations"]:
        row = {f: c.get(f) for f in fields[:7]}
        row.update({k: c["metrics"].get(k) for k in keys})
        row.update({f"delta_{k}": c["delta_vs_reference"].get(k, {}).get("abs") for k in keys})
        for clock in ("end_to_end", "inference"):
            row.update({f"{clock}_{k}": c["latency_ms"][clock].get(k) for k in lat_keys})
        row.update(speedup_end_to_end=c["speedup_end_to_end"], speedup_inference=c["speedup_inference"])
        rows.append(row)
    return fields, rows


def plot_pr(ev: EvalResult, path: Path) -> Path | None:
    """Precision-recall at IoU 0.5 per class, one line style per configuration."""
    curves = [
        (r.config.name, r.scores.curves, r.scores.metrics) for r in ev.results if r.scores and r.scores.curves
    ]
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = sorted({k for _, cs, _ in curves for k in cs})
    fig, axes = plt.subplots(1, len(classes), figsize=(5 * len(classes), 4.2), squeeze=False)
    for ax, cls in zip(axes[0], classes):
        for name, cs, metrics in curves:
            if cls in cs:
                x, y = cs[cls]
                # pycocotools pads precision with 0 beyond the highest recall reached: end the line there
                reached = np.flatnonzero(np.nan_to_num(y) > 0)
                y = np.where(np.arange(len(y)) <= (reached[-1] if reached.size else -1), y, np.nan)
                ap50 = metrics.get(f"AP50[{cls}]")
                label = name if ap50 is None else f"{name} (AP50 {ap50 * 100:.1f} %)"
                ax.plot(x, y, label=label)
        ax.set(
            title=f"{cls}: precision-recall @ IoU 0.5",
            xlabel="recall",
            ylabel="precision",
            xlim=(0, 1),
            ylim=(0, 1.02),
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_latency(ev: EvalResult, path: Path) -> Path | None:
    """End-to-end latency histogram per configuration (shared bins)."""
    data = [(r.config.name, r.end_to_end_ms) for r in ev.results if r.end_to_end_ms.size]
    if not data:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    allv = np.concatenate([d for _, d in data])
    hi = float(np.percentile(allv, 99.5))
    bins = np.linspace(float(allv.min()), max(hi, float(allv.min()) + 1e-3), 50)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, d in data:
        ax.hist(np.clip(d, None, hi), bins=bins, alpha=0.55, label=f"{name} (mean {d.mean():.1f} ms)")
    ax.set(title="End-to-end latency per frame", xlabel="ms", ylabel="frames")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def write_report(ev: EvalResult, out_dir: str | Path, plots: bool = True) -> dict[str, Path]:
    """Write ``report.md``, ``report.json``, ``report.csv`` (+ ``pr_curve.png``, ``latency_hist.png``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = to_dict(ev)
    paths = {"json": out / "report.json", "markdown": out / "report.md", "csv": out / "report.csv"}
    paths["json"].write_text(json.dumps(report, indent=2, default=_json_default, allow_nan=True))
    paths["markdown"].write_text(to_markdown(report, ev))
    fields, rows = to_csv_rows(report)
    with open(paths["csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    if plots:
        for key, fn, name in (("pr", plot_pr, "pr_curve.png"), ("latency", plot_latency, "latency_hist.png")):
            p = fn(ev, out / name)
            if p is not None:
                paths[key] = p
    return paths


def scores_markdown(scores: dict[str, dict[str, float]], reference: str) -> str:
    """Metrics (rows) of several runs (columns) side by side with each run's change vs ``reference``:
    seed 000's "12 COCO numbers of FP32 vs the optimised model" for results files scored alone."""
    names = list(scores)
    keys = [k for k in scores[reference] if not k.startswith("AP50[")] + [
        k for k in scores[reference] if k.startswith("AP50[")
    ]
    header = ["metric", *names, *[f"{n} vs {reference}" for n in names if n != reference]]
    rows = []
    for k in keys:
        ref = scores[reference].get(k, float("nan"))
        values = [_fmt(k, scores[n].get(k, float("nan"))) for n in names]
        deltas = [_fmt(k, scores[n].get(k, float("nan")) - ref, signed=True) for n in names if n != reference]
        rows.append([_SHORT_LABELS.get(k, k), *values, *deltas])
    return "\n".join(_table(header, rows))
