"""One verdict for a machine with TensorRT (a Jetson): every check, one report to attach to an issue.

    bash scripts/jetson_check.sh [--quick] [--out jetson_report]

Steps, in order (each one ran / passed / failed / skipped, with why and its output):

1. environment: CPU and its instruction sets, GPU (``nvidia-smi``), TensorRT / OpenVINO / ONNX Runtime;
2. the TensorRT-marked tests (``pytest -m tensorrt``);
3. every sample engine in FP32 / FP16 / INT8 through the engine cache (``trt-perception build``; INT8
   from the TensorRT Q/DQ recipe, ``trt-perception quantize --target tensorrt``);
4. the tables, TensorRT beside ONNX Runtime (``trt-perception evaluate --tensorrt``: detector
   mAP@[.5:.95] / mAP@0.5 and all 12 COCO numbers, plate exact match, segmentation mIoU, with latency
   and FPS avg/min/max) and the CPU tables of the seeds (``bench.bench_thesis``, ``bench.bench_brains``,
   ``bench.bench_segmentation``);
5. the report: ``<out>/report.md`` (+ ``report.json``).

Where TensorRT is absent (these CI machines) the TensorRT steps are *skipped* and the report says so
and why; everything else runs. ``--quick`` keeps the CI smoke run short: few frames, FP32+INT8, no
CPU benchmark tables (reported as skipped: quick mode).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CLI = [PY, "-m", "trt_perception.cli"]
#: the engine_builder config's entries (profiles of the dynamic models) are what a robot builds
ENGINE_CONFIG = ROOT / "config" / "engine_builder.yaml"
EVAL_TASKS = {  # task -> model (plates: the GT crops of data/val)
    "detection": "models/detector.onnx",
    "plates": "models/plate_reader_ctc.onnx",
    "segmentation": "models/segmenter.onnx",
}


@dataclass
class Step:
    name: str
    status: str  # passed | failed | skipped
    why: str = ""
    seconds: float = 0.0
    command: str = ""
    output: str = ""


def run_step(name: str, cmd: list[str], timeout: float, tail: int = 60) -> Step:
    """Run ``cmd`` in the repository; passed when it exits 0. Keeps the last ``tail`` output lines."""
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        out, ok = p.stdout + p.stderr, p.returncode == 0
        why = "" if ok else f"exit status {p.returncode}"
    except subprocess.TimeoutExpired as exc:
        out, ok, why = str(exc.stdout or ""), False, f"timed out after {timeout:.0f} s"
    lines = [ln for ln in out.splitlines() if "━" not in ln]
    return Step(
        name,
        "passed" if ok else "failed",
        why,
        round(time.monotonic() - start, 1),
        " ".join(cmd[2:]),
        "\n".join(lines[-tail:]),
    )


def environment() -> tuple[Step, str]:
    """The machine, and why TensorRT cannot run here ('' when it can)."""
    from bench.bench_thesis import cpu_isa
    from trt_perception.inference.factory import tensorrt_unavailable_reason

    trt_why = tensorrt_unavailable_reason()
    gpu = "no nvidia-smi"
    if shutil.which("nvidia-smi"):
        q = subprocess.run(["nvidia-smi", "-L"], check=False, capture_output=True, text=True)
        gpu = q.stdout.strip() or q.stderr.strip()
    if not trt_why and gpu == "no nvidia-smi" and not Path("/etc/nv_tegra_release").exists():
        trt_why = "TensorRT imports but no NVIDIA GPU was found"
    import onnxruntime
    import openvino

    isa = ", ".join(k for k, v in cpu_isa().items() if v) or "none of AVX2/AVX-512/VNNI"
    text = "\n".join(
        [
            f"CPU: {platform.processor() or platform.machine()} ({isa})",
            f"GPU: {gpu}",
            f"TensorRT: {trt_why or 'usable'}",
            f"ONNX Runtime {onnxruntime.__version__} ({', '.join(onnxruntime.get_available_providers())})",
            f"OpenVINO {openvino.__version__}; Python {platform.python_version()}; {platform.platform()}",
        ]
    )
    return Step("environment", "passed", output=text), trt_why


def skipped(name: str, why: str, command: str = "") -> Step:
    return Step(name, "skipped", why, command=command)


def tensorrt_steps(trt_why: str, out: Path, quick: bool) -> list[Step]:
    """The TensorRT-marked tests and every sample engine x precision through the engine cache."""
    precisions = ("fp32", "int8") if quick else ("fp32", "fp16", "int8")
    if trt_why:
        why = f"TensorRT cannot run here: {trt_why}"
        steps = [skipped("TensorRT-marked tests", why, "pytest -m tensorrt")]
        return steps + [
            skipped(f"engines {p}", why, f"trt-perception build --precision {p}") for p in precisions
        ]
    steps = [run_step("TensorRT-marked tests", [PY, "-m", "pytest", "-q", "-m", "tensorrt", "test"], 3600)]
    cache = str(out / "engines")
    for p in precisions:
        if p != "int8":
            cmd = [*CLI, "build", "--config", str(ENGINE_CONFIG), "--precision", p, "--cache-dir", cache]
            steps.append(run_step(f"engines {p}", cmd, 3600))
            continue
        steps += _int8_engines(out, cache)
    return steps


def _int8_engines(out: Path, cache: str) -> list[Step]:
    """INT8 engines from the TensorRT Q/DQ recipe (symmetric INT8 on weighted-layer inputs)."""
    import yaml

    entries = yaml.safe_load(ENGINE_CONFIG.read_text())["/**"]["ros__parameters"]["engines"]
    steps = []
    for entry in entries:
        model, _, rest = entry.partition(";")
        qdq = out / "qdq" / (Path(model).stem + ".int8.onnx")
        quant = [*CLI, "quantize", model, "--int8", str(qdq), "--target", "tensorrt"]
        quant += ["--calib-bag", "data/sample_bag", "--preprocess", "resize"]
        if "segmenter" in model:
            quant += ["--shape", "352x640"]
        step = run_step(f"INT8 Q/DQ {Path(model).name}", quant, 1800)
        steps.append(step)
        if step.status == "passed":
            spec = ";".join([str(qdq), "precision=int8", *([rest] if rest else [])])
            steps.append(
                run_step(f"engine int8 {Path(model).name}", [*CLI, "build", spec, "--cache-dir", cache], 3600)
            )
    return steps


def table_steps(trt_why: str, out: Path, quick: bool) -> list[Step]:
    """The tables: evaluate (TensorRT beside ONNX Runtime where it can) and the CPU benchmark tables."""
    steps = []
    precisions = "fp32,int8" if quick else "fp32,fp16,int8"
    for task, model in EVAL_TASKS.items():
        cmd = [*CLI, "evaluate", "--task", task, "--dataset", "data/val", "--model", model]
        cmd += [
            "--precisions",
            precisions,
            "--calibration",
            "data/traffic/images",
            "--int8-target",
            "tensorrt",
        ]
        cmd += ["--out", str(out / f"evaluate_{task}"), "--no-plots", "--quiet"]
        cmd += ["--limit", "8"] if quick else []
        cmd += ["--tensorrt"] if not trt_why else []
        step = run_step(
            f"table: evaluate {task}" + (" (TensorRT beside ONNX Runtime)" if not trt_why else ""), cmd, 3600
        )
        if trt_why and step.status == "passed":
            step.why = f"ONNX Runtime only: TensorRT columns skipped ({trt_why})"
        steps.append(step)
    benches = {
        "seed 002: bench_thesis": [PY, "-m", "bench.bench_thesis", "--out", str(out / "thesis.json")],
        "seed 001: bench_brains": [PY, "-m", "bench.bench_brains", "--out", str(out / "brains.json")],
        "seed 004: bench_segmentation": [
            PY,
            "-m",
            "bench.bench_segmentation",
            "--out",
            str(out / "segmentation.json"),
        ],
    }
    for name, cmd in benches.items():
        steps.append(
            skipped(name, "quick mode (run without --quick)", " ".join(cmd[2:]))
            if quick
            else run_step(name, cmd, 7200, tail=80)
        )
    return steps


def report(steps: list[Step], out: Path, quick: bool) -> Path:
    counts = {s: sum(st.status == s for st in steps) for s in ("passed", "failed", "skipped")}
    verdict = "FAIL" if counts["failed"] else ("PASS (with skips)" if counts["skipped"] else "PASS")
    lines = [
        f"# trt_perception machine check: {verdict}",
        "",
        f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}, {'quick' if quick else 'full'} run, "
        f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped.",
        "",
        "| step | status | seconds | why |",
        "|---|---|---|---|",
        *[f"| {s.name} | {s.status.upper()} | {s.seconds:.0f} | {s.why} |" for s in steps],
        "",
    ]
    for s in steps:
        lines += [f"## {s.name}: {s.status}", ""]
        lines += [f"`{s.command}`", ""] if s.command else []
        lines += [f"Skipped: {s.why}", ""] if s.status == "skipped" else []
        lines += ["```", s.output, "```", ""] if s.output else []
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(
        json.dumps({"verdict": verdict, "steps": [asdict(s) for s in steps]}, indent=2)
    )
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="CI smoke run: few frames, no CPU benchmark tables")
    p.add_argument("--out", type=Path, default=ROOT / "jetson_report")
    args = p.parse_args(argv)
    env, trt_why = environment()
    print(env.output, flush=True)
    steps = [env]
    for group in (tensorrt_steps, table_steps):
        for step in group(trt_why, args.out, args.quick):
            print(f"[{step.status}] {step.name} {step.why}", flush=True)
            steps.append(step)
    path = report(steps, args.out, args.quick)
    print(f"report: {path}")
    return 1 if any(s.status == "failed" for s in steps) else 0


if __name__ == "__main__":
    sys.exit(main())
