"""Many cameras on one CPU: one batched pipeline against N independent pipelines, in one process and in N.

    .venv/bin/python -m bench.bench_multicamera          # -> bench/results/multicamera.json (~5 min)

N = 1, 2, 4, 8 cameras, each the sample video played as a live 30 Hz camera (``CameraSource``, newest
frame kept: a consumer that falls behind drops frames, it does not queue them). Every camera goes
through the same chain: detector -> tracker -> plate reader with per-vehicle consensus. Three ways:

* ``batched``: ``MultiCameraRunner``: a muxer (50 ms timeout), one detector call per batch of N, the
  plate crops of all cameras in one reader call, a tracker and consensus per camera;
* ``separate_threads``: N ``PipelineRunner`` workers in this process, each with its own detector and
  reader (what N nodes in one container do);
* ``separate_processes``: N processes with one single-camera pipeline each (what N nodes do).

Measured over the same window after a warm-up: aggregate processed frames per second, per-camera
latency (capture stamp -> result) p50 (median over cameras) and p95 (worst camera), per-camera
delivered rate, detector calls per second and dropped frames. Then the batching curve: the detector
engine alone (ONNX Runtime CPU) at batch 1..8. Targets (issue 19): at N = 4 the batched pipeline
sustains every camera at its rate where the separate ones cannot, or >= 1.25x their aggregate
throughput; its per-camera p95 <= 2x the single-camera p95. The machine's load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import machine, summary, target  # noqa: E402
from trt_perception.inference.onnxruntime_backend import OnnxRuntimeEngine  # noqa: E402
from trt_perception.pipeline.multi_camera import BatchResult, MultiCameraPipeline, MultiCameraRunner  # noqa: E402
from trt_perception.pipeline.perception import PerceptionPipeline, PipelineResult  # noqa: E402
from trt_perception.pipeline.runner import PipelineRunner  # noqa: E402
from trt_perception.stages.camera import CameraConfig, Frame  # noqa: E402
from trt_perception.stages.detector import DetectorConfig  # noqa: E402
from trt_perception.stages.plate_reader import PlateReaderConfig  # noqa: E402
from trt_perception.stages.tracker import TrackerConfig  # noqa: E402

MODELS = ROOT / "models"
VIDEO = ROOT / "data" / "sample_scene.mp4"
GPU_RESULT = ROOT / "bench" / "results" / "multicamera_gpu.json"
RATE_HZ = 30.0
#: A camera is sustained when its processed rate is at least this share of its 30 Hz.
SUSTAINED = 0.9
TARGETS = {"n": 4, "throughput_ratio_min": 1.25, "p95_vs_single_max": 2.0, "sustained_share": SUSTAINED}
COUNTS = (1, 2, 4, 8)


def configs() -> tuple[DetectorConfig, PlateReaderConfig, TrackerConfig]:
    return (
        DetectorConfig(model=str(MODELS / "detector.onnx"), backend="onnxruntime"),
        PlateReaderConfig(model=str(MODELS / "plate_reader_ctc.onnx"), backend="onnxruntime"),
        TrackerConfig(),
    )


def camera() -> CameraConfig:
    # A live camera: the newest frame is kept, so a consumer that falls behind drops frames.
    return CameraConfig(source=str(VIDEO), rate_hz=RATE_HZ, loop=True, lossless=False)


class Window:
    """Per-camera latencies and counts of the results that land between ``start`` and ``end``."""

    def __init__(self, cameras: int, start: float, end: float) -> None:
        self.start, self.end = start, end
        self.latency: list[list[float]] = [[] for _ in range(cameras)]
        self.calls = 0
        self._lock = threading.Lock()

    def add(self, cam: int, stamp_ns: int) -> None:
        now = time.time()
        if self.start <= now < self.end:
            with self._lock:
                self.latency[cam].append((time.time_ns() - stamp_ns) / 1e6)

    def call(self) -> None:
        if self.start <= time.time() < self.end:
            with self._lock:
                self.calls += 1

    def wait(self) -> None:
        time.sleep(max(0.0, self.end - time.time()))


def raw(
    latency: list[list[float]], calls: int, seconds: float, drops: list[int], **extra: Any
) -> dict[str, Any]:
    """One run's measurements, before ``figures`` (rounds of one mode are added up first)."""
    return {"latency": latency, "calls": calls, "seconds": seconds, "drops": drops, **extra}


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds of one mode and N as one run: latencies per camera joined, counts and times added."""
    out = dict(runs[0])
    for r in runs[1:]:
        out["latency"] = [a + b for a, b in zip(out["latency"], r["latency"])]
        for key in ("calls", "seconds"):
            out[key] += r[key]
        out["drops"] = [a + b for a, b in zip(out["drops"], r["drops"])]
        for key in ("sizes", "inference"):
            if key in out:
                out[key] = out[key] + r[key]
    return out


def figures(r: dict[str, Any]) -> dict[str, Any]:
    latency, seconds = r["latency"], r["seconds"]
    per_cam = [len(lat) / seconds for lat in latency]
    p50 = [summary(lat)["median_ms"] for lat in latency if lat]
    p95 = [summary(lat)["p95_ms"] for lat in latency if lat]
    out = {
        "aggregate_fps": round(sum(per_cam), 2),
        "per_camera_fps": [round(f, 2) for f in per_cam],
        "min_camera_fps": round(min(per_cam), 2),
        "sustained": min(per_cam) >= SUSTAINED * RATE_HZ,
        "latency_p50_ms": round(float(np.median(p50)), 2) if p50 else None,
        "latency_p95_ms": round(max(p95), 2) if p95 else None,
        "detector_calls_per_s": round(r["calls"] / seconds, 2),
        "dropped_frames": r["drops"],
    }
    if r.get("sizes"):
        out["mean_batch_size"] = round(float(np.mean(r["sizes"])), 2)
        out["batch_inference_ms"] = summary(r["inference"])
    return out


def run_batched(n: int, warmup_s: float, seconds: float) -> dict[str, Any]:
    det, reader, tracker = configs()
    pipeline = MultiCameraPipeline.build(n, det, reader, tracker=tracker)
    pipeline.warmup()
    window = Window(n, time.time() + warmup_s, time.time() + warmup_s + seconds)
    sizes: list[int] = []
    inference: list[float] = []

    def on_batch(result: BatchResult) -> None:
        for cam in result.cameras:
            window.add(cam.source, cam.result.stamp_ns)
        if window.start <= time.time() < window.end:
            sizes.append(result.stats.size)
            inference.append(result.stats.inference_ms)
        window.call()

    runner = MultiCameraRunner(pipeline, [camera() for _ in range(n)], on_batch, timeout_s=0.05).start(
        worker=True
    )
    window.wait()
    drops = runner.muxer.drops
    runner.stop()
    return raw(window.latency, window.calls, seconds, drops, sizes=sizes, inference=inference)


def pipelines(n: int) -> list[PerceptionPipeline]:
    det, reader, tracker = configs()
    out = [PerceptionPipeline.build(det, reader, tracker=tracker) for _ in range(n)]
    for p in out:
        p.warmup()
    return out


def separate(
    pipes: list[PerceptionPipeline], start: float, end: float
) -> tuple[Window, list[PipelineRunner]]:
    """Single-camera pipelines on worker threads, one camera each, results counted into one window."""
    window = Window(len(pipes), start, end)
    runners = []
    for i, pipeline in enumerate(pipes):

        def on_result(frame: Frame, result: PipelineResult, cam: int = i) -> None:
            window.add(cam, frame.stamp_ns)
            window.call()

        runners.append(PipelineRunner(pipeline, camera(), on_result))
    for r in runners:
        r.start(worker=True)
    return window, runners


def run_threads(n: int, warmup_s: float, seconds: float) -> dict[str, Any]:
    pipes = pipelines(n)
    t0 = time.time()
    window, runners = separate(pipes, t0 + warmup_s, t0 + warmup_s + seconds)
    window.wait()
    drops = [r.camera.state.dropped for r in runners if r.camera is not None]
    for r in runners:
        r.stop()
    return raw(window.latency, window.calls, seconds, drops)


def run_processes(n: int, warmup_s: float, seconds: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.bench_multicamera", "--child", "--seconds", str(seconds)]
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    for proc in procs:  # each says when its pipeline is built and warm
        assert proc.stdout is not None
        while (line := proc.stdout.readline()).strip() != "ready":
            if not line:
                raise RuntimeError(f"a child pipeline exited with {proc.wait()} before it was ready")
    start = time.time() + warmup_s
    for proc in procs:  # every child gets the window before any is waited for
        assert proc.stdin is not None
        proc.stdin.write(f"{start}\n")
        proc.stdin.flush()
    children = [json.loads(proc.communicate(timeout=120)[0].strip().splitlines()[-1]) for proc in procs]
    latency = [c["latency"] for c in children]
    return raw(latency, sum(c["calls"] for c in children), seconds, [c["dropped"] for c in children])


def child(seconds: float) -> int:
    """One single-camera pipeline in its own process, measured over the window the parent opens (the
    start time it writes to stdin once every child is ready)."""
    det, reader, tracker = configs()
    pipeline = PerceptionPipeline.build(det, reader, tracker=tracker)
    pipeline.warmup()
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    window, runners = separate([pipeline], start, start + seconds)
    window.wait()
    dropped = runners[0].camera.state.dropped if runners[0].camera is not None else 0
    runners[0].stop()
    print(json.dumps({"latency": window.latency[0], "calls": window.calls, "dropped": dropped}))
    return 0


def batching_curve(iters: int) -> dict[str, Any]:
    """The detector engine alone at batch 1..8: ms per call (median, and the 10th percentile, which other
    jobs on the shared cores disturb least) and the 10th percentile per frame."""
    engine = OnnxRuntimeEngine(MODELS / "detector.onnx")
    x = np.random.default_rng(0).random((8, 3, 288, 512), dtype=np.float32)
    sizes = range(1, 9)
    for b in sizes:
        for _ in range(3):
            engine.infer({"images": x[:b]})
    ms: dict[int, list[float]] = {b: [] for b in sizes}
    for _ in range(iters):  # batch sizes interleaved: a load change on the shared cores hits them all
        for b in sizes:
            engine.infer({"images": x[:b]})
            ms[b].append(engine.last_latency_ms)
    rows = {}
    for b in sizes:
        p10 = float(np.percentile(ms[b], 10))
        rows[str(b)] = {
            "median_ms": round(float(np.median(ms[b])), 3),
            "p10_ms": round(p10, 3),
            "p10_per_frame_ms": round(p10 / b, 3),
        }
    return rows


def gpu_note(curve: dict[str, Any]) -> str:
    one, eight = curve["1"]["p10_ms"], curve["8"]["p10_ms"]
    return (
        f"ORT CPU (10th percentiles): batch 8 costs {eight / one:.1f}x batch 1 ({eight / 8:.2f} vs {one:.2f} ms a frame): "
        "a CPU is already busy at batch 1 with this 288x512 net, so batching saves only the per-call overhead. "
        "On a Jetson-class GPU (Orin, TensorRT FP16) a tiny net at batch 1 leaves most SMs idle and pays launch and "
        "sync overhead per call; batch N typically costs well under N single calls there (expected ~1.5-3x the "
        "batch-1 time at batch 8, i.e. ~3-5x fewer GPU-milliseconds per frame), and N cameras need one engine, "
        "one context and one set of buffers instead of N. Expectation, not measured here."
    )


def merge_gpu(result: dict[str, Any], path: Path = GPU_RESULT) -> None:
    """The GPU machine's curve (``bench/gpu_multicamera_device.py``), when it has been run, and what
    it says about batching there."""
    if not path.is_file():
        result["batching_curve_gpu"] = (
            f"not run: {path.name} absent (python3 -m bench.gpu_multicamera_device)"
        )
        return
    gpu = json.loads(path.read_text())
    result["batching_curve_gpu"] = gpu
    c = gpu["curve_fp16"]
    result["gpu_note"] = (
        f"{gpu['device']}, FP16 CUDA graph: batch 8 costs {c['8']['median_ms'] / c['1']['median_ms']:.2f}x batch 1 "
        f"({c['8']['per_frame_ms']:.3f} vs {c['1']['per_frame_ms']:.3f} ms a frame)"
    )


def verdict(r: dict[str, Any]) -> list[dict[str, Any]]:
    n = str(TARGETS["n"])
    b, t, p = r["modes"]["batched"][n], r["modes"]["separate_threads"][n], r["modes"]["separate_processes"][n]
    best_separate = max(t["aggregate_fps"], p["aggregate_fps"])
    ratio = round(b["aggregate_fps"] / best_separate, 3) if best_separate else None
    only_batched = b["sustained"] and not (t["sustained"] or p["sustained"])
    single = r["modes"]["separate_threads"]["1"]["latency_p95_ms"]
    p95_ratio = round(b["latency_p95_ms"] / single, 3) if single and b["latency_p95_ms"] else None
    either = only_batched or (ratio is not None and ratio >= TARGETS["throughput_ratio_min"])
    return [
        target(
            "N=4: batched sustains every camera where the separate pipelines cannot, or >= 1.25x their aggregate FPS",
            either,
            "==",
            True,
            shown=f"sustained only when batched: {only_batched}; {ratio}x ({b['aggregate_fps']} vs {best_separate} fps)",
        ),
        target("N=4: batched / best separate aggregate FPS", ratio, "report", None, "x"),
        target(
            "N=4: batched per-camera p95 / single-camera p95",
            p95_ratio,
            "<=",
            TARGETS["p95_vs_single_max"],
            "x",
            shown=f"{p95_ratio}x ({b['latency_p95_ms']} vs {single} ms)",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--seconds", type=float, default=8.0, help="measurement window per mode and N (all rounds)"
    )
    p.add_argument("--rounds", type=int, default=2, help="alternations of the three modes per N")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of running before the window opens")
    p.add_argument("--counts", type=int, nargs="+", default=list(COUNTS))
    p.add_argument("--curve-iters", type=int, default=40)
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/multicamera.json")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.seconds)
    started = os.getloadavg()
    result: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "limits": TARGETS,
        "setup": {
            "source": "data/sample_scene.mp4 per camera, live at 30 Hz (newest frame kept)",
            "chain": "detector (ORT CPU) -> tracker -> plate consensus with the CTC reader",
            "window_s": args.seconds,
            "rounds": args.rounds,
            "warmup_s": args.warmup,
            "muxer_timeout_s": 0.05,
        },
        "modes": {"batched": {}, "separate_threads": {}, "separate_processes": {}},
    }
    # The engine curve first, before the N-process runs leave the load average up.
    curve = batching_curve(args.curve_iters)
    result["batching_curve_ort_cpu"] = curve
    result["jetson_expectation"] = gpu_note(curve)
    merge_gpu(result)
    runs = {"batched": run_batched, "separate_threads": run_threads, "separate_processes": run_processes}
    for n in args.counts:
        # Rounds alternate the modes, so that a change in the shared machine's load hits all three.
        rounds: dict[str, list[dict[str, Any]]] = {mode: [] for mode in runs}
        for _ in range(args.rounds):
            for mode, fn in runs.items():
                rounds[mode].append(fn(n, args.warmup, args.seconds / args.rounds))
        for mode, got in rounds.items():
            result["modes"][mode][str(n)] = figures(combine(got))
            print(f"N={n} {mode}: {result['modes'][mode][str(n)]}", flush=True)
    result["load_average_start_end"] = [list(started), list(os.getloadavg())]
    if {1, TARGETS["n"]} <= set(args.counts):
        result["targets"] = verdict(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("batching_curve_ort_cpu", "targets") if k in result}, indent=2))
    return 0 if all(t["pass"] is not False for t in result.get("targets", [])) else 1


if __name__ == "__main__":
    raise SystemExit(main())
