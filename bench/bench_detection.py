"""Detection benchmark -> ``bench/results/detection.json``.

    .venv/bin/python -m bench.bench_detection [--frames 150] [--quick]

1. Per-frame work other than the engine call for a 1280x720 bgr8 Image: conversion, pre-processing,
   decoding + NMS, Detection2DArray build (target <= 3 ms on the 2-core CPU).
2. In-process ratio: frame captured -> Detection2DArray published, over the engine call alone on the
   same frame and backend (target <= 1.15). Both are timed in one loop, alternating on each frame:
   the engine call alone, then the whole path (pre-processing, engine, decoding + NMS, message build
   with the node's reusable ``DetectionMsgBuilder``, publish); the JSON splits the whole path into
   its parts (medians of the same iterations), and ``floor_ratio_median``: (720p resize + engine) over
   the engine alone in the same loop, the ratio no pipeline that shrinks the frame can beat.
2b. The real ``perception_pipeline`` node (detector only) on the sample video at 30 Hz: capture
   stamp -> Detection2DArray published (taken right after ``publish`` returns), over the engine call
   inside that node on the same frames (paced frames run colder than a tight loop, the engine too);
   with the per-stage medians and the remainder (hand-over, message, publish). ``floor_paced``: at
   the same rate, (720p resize + engine) over the engine alone, no other work: the ratio no
   pipeline can beat when frames come paced (idle gaps leave caches cold).
3. Separate processes: this process publishes the camera images (as camera_bridge does), the
   ``detector`` node runs as its own process, this process receives the detections. Ratio over the
   engine call alone, and the part that is image transport (the node's ``frame_age``: receive minus
   stamp, from its /diagnostics).
4. NMS on a YOLOv8 COCO head: 8400 candidates x 80 classes (target <= 2 ms), decode + NMS.
5. Plate pipeline frames per second on the sample video, detector + reader, ONNX Runtime CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.common import machine, summary, target, timed
from trt_perception.io.stamps import set_time, stamp_ns
from trt_perception.io.video import video_frames

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "detection.json"
DETECTOR = ROOT / "models" / "detector.onnx"
READER = ROOT / "models" / "plate_reader_ctc.onnx"
VIDEO = ROOT / "data" / "sample_scene.mp4"


def sample_frames(n: int) -> list[np.ndarray]:
    """Frames of the sample video (or a synthetic 720p frame when the data is missing)."""
    frames = video_frames(VIDEO, n)
    if not frames:
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 255, (720, 1280, 3), np.uint8)]
    return frames


def bench_overhead(frames: list[np.ndarray], iters: int) -> dict[str, Any]:
    """Everything per frame except the engine call, on the real detector's real outputs."""
    from trt_perception.io.images import image_to_bgr, numpy_to_image
    from trt_perception.ros.detection_msgs import detections_to_msg
    from trt_perception.stages.detector import Detector, DetectorConfig

    det = Detector(DetectorConfig(model=str(DETECTOR)))
    msgs = [numpy_to_image(f, "bgr8") for f in frames[:20]]
    outputs = []
    for m in msgs:  # engine outputs computed once per frame, outside the timing
        feeds, box = det.encode(image_to_bgr(m))
        outputs.append(({k: v.copy() for k, v in det.engine.infer(feeds).items()}, box))
    parts: dict[str, list[float]] = {
        k: [] for k in ("conversion", "preprocess", "decode_nms", "message", "total")
    }
    for i in range(iters + 5):
        m = msgs[i % len(msgs)]
        out, _ = outputs[i % len(outputs)]
        t0 = time.perf_counter()
        bgr = image_to_bgr(m)
        t1 = time.perf_counter()
        _, box = det.encode(bgr)
        t2 = time.perf_counter()
        dets = det.postprocess(out, box)
        t3 = time.perf_counter()
        detections_to_msg(dets, m.header)
        t4 = time.perf_counter()
        if i >= 5:
            for k, a, b in (
                ("conversion", t0, t1),
                ("preprocess", t1, t2),
                ("decode_nms", t2, t3),
                ("message", t3, t4),
                ("total", t0, t4),
            ):
                parts[k].append((b - a) * 1e3)
    return {k: summary(v) for k, v in parts.items()} | {
        "detections_per_frame": float(np.mean([len(det.postprocess(o, b)) for o, b in outputs]))
    }


def bench_in_process(frames: list[np.ndarray], iters: int) -> dict[str, Any]:
    """Captured frame -> published Detection2DArray, vs the engine call alone (same frame, backend)."""
    import rclpy
    from vision_msgs.msg import Detection2DArray

    from trt_perception.metrics.latency import LatencyRecorder
    from trt_perception.ros.detection_msgs import DetectionMsgBuilder
    from trt_perception.ros.qos import reliable_qos
    from trt_perception.stages.detector import Detector, DetectorConfig

    latency = LatencyRecorder(window=10_000)
    det = Detector(DetectorConfig(model=str(DETECTOR)), latency)
    build = DetectionMsgBuilder()
    det.warmup(5)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("bench_detection_in_process", context=ctx)
    pub = node.create_publisher(Detection2DArray, "bench/detections", reliable_qos(10))
    from std_msgs.msg import Header

    e2e, engine, message, publish, floor = [], [], [], [], []
    nw, nh = det.input_size  # 1280x720 fills the sample model's 512x288 input: no letterbox bars
    shrunk = np.empty((nh, nw, 3), np.uint8)
    feeds = det.encode(frames[0]).feeds  # the engine-alone runs feed the stage's own input buffer
    try:
        for i in range(iters + 5):
            frame = frames[i % len(frames)]
            if i == 5:
                latency.reset()  # warm-up iterations out of the part medians
            # Alternate engine-alone and full-path runs on the same frame so drift hits both alike.
            t = time.perf_counter()
            det.engine.infer(feeds)
            eng = (time.perf_counter() - t) * 1e3
            # The floor: the one thing no pipeline can skip, shrinking the 720p frame, then the engine.
            t = time.perf_counter()
            cv2.resize(frame, (nw, nh), dst=shrunk, interpolation=cv2.INTER_LINEAR)
            det.engine.infer(feeds)
            least = (time.perf_counter() - t) * 1e3
            t = time.perf_counter()
            header = Header(frame_id="camera")
            dets = det(frame)
            t1 = time.perf_counter()
            msg = build(dets, header)  # serialised (CDR) where it matches rclpy's, as the node does
            t2 = time.perf_counter()
            pub.publish(msg)
            t3 = time.perf_counter()
            if i >= 5:
                engine.append(eng)
                floor.append(least)
                e2e.append((t3 - t) * 1e3)
                message.append((t2 - t1) * 1e3)
                publish.append((t3 - t2) * 1e3)
    finally:
        node.destroy_node()
        rclpy.shutdown(context=ctx)
    ratio = statistics.median(e2e) / statistics.median(engine)
    stage = {k: latency.stats(k) for k in ("preprocess", "inference", "postprocess")}
    return {
        "end_to_end": summary(e2e),
        "engine_alone": summary(engine),
        "ratio_median": ratio,
        "backend": det.engine.backend,
        # (resize of the 720p frame + engine) / engine, same loop: the ratio no pipeline can beat here.
        "floor_resize_and_engine": summary(floor),
        "floor_ratio_median": statistics.median(floor) / statistics.median(engine),
        # Medians of each part of the whole path, same iterations (they need not sum to its median).
        "parts_median_ms": {
            "preprocess": stage["preprocess"].p50_ms,
            "engine_in_path": stage["inference"].p50_ms,
            "decode_nms": stage["postprocess"].p50_ms,
            "message": statistics.median(message),
            "publish": statistics.median(publish),
        },
    }


def bench_pipeline_node(rate_hz: float, seconds: float) -> dict[str, Any]:
    """The real perception_pipeline node in this process, detector only, camera on the sample video
    at ``rate_hz`` (below saturation): capture stamp -> Detection2DArray published, per frame."""
    import rclpy

    from trt_perception.nodes.perception_pipeline import PerceptionPipelineNode

    ctx_args = ["bench", "--ros-args"]
    for o in (
        f"camera.source:={VIDEO}",
        f"camera.rate_hz:={rate_hz}",
        "camera.loop:=true",
        f"detector.model:={DETECTOR}",
        "plate_reader.enabled:=false",
        "latency_window:=5000",
    ):
        ctx_args += ["-p", o]
    rclpy.init(args=ctx_args)
    node = PerceptionPipelineNode()
    ages: list[float] = []
    # The hook runs right after the node's publish calls returned.
    node.result_hook = lambda r: ages.append((time.time_ns() - r.stamp_ns) * 1e-6)
    try:
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.on_shutdown()
        inference = node.latency.stats("detector.inference")
        handover = node.latency.stats("frame_age")
        parts = {
            k: (st.p50_ms if st else None)
            for k, st in (
                ("camera_handover", handover),
                ("preprocess", node.latency.stats("detector.preprocess")),
                ("engine", inference),
                ("decode_nms", node.latency.stats("detector.postprocess")),
                ("stages_total", node.latency.stats("end_to_end")),
            )
        }
        inline = bool(node.params["camera.process_in_capture_thread"])
        node.destroy_node()
        rclpy.shutdown()
    ages = ages[5:]
    eng = inference.p50_ms if inference else float("nan")
    return {
        "rate_hz": rate_hz,
        "frames": len(ages),
        "captured_to_published": summary(ages) if ages else None,
        "engine_p50_ms": eng,
        "camera_handover_p50_ms": handover.p50_ms if handover else None,
        "ratio_median": statistics.median(ages) / eng if ages else None,
        "process_in_capture_thread": inline,
        # Node medians; the rest of captured_to_published is the message build and publish.
        "parts_median_ms": parts,
        "message_and_publish_ms_approx": (
            statistics.median(ages) - (parts["camera_handover"] or 0) - (parts["stages_total"] or 0)
            if ages
            else None
        ),
    }


def bench_paced_floor(frames: list[np.ndarray], rate_hz: float, count: int) -> dict[str, Any]:
    """The node's floor: frames paced at ``rate_hz`` like the camera's, alternating per frame between
    the engine call alone and the 720p resize + the engine call; no ROS, no other work."""
    from trt_perception.stages.detector import Detector, DetectorConfig

    det = Detector(DetectorConfig(model=str(DETECTOR)))
    det.warmup(5)
    nw, nh = det.input_size
    shrunk = np.empty((nh, nw, 3), np.uint8)
    feeds = det.encode(frames[0]).feeds  # the engine-alone runs feed the stage's own input buffer
    engine, floor = [], []
    due = time.monotonic()
    for i in range(2 * count + 10):
        due += 1.0 / rate_hz
        time.sleep(max(0.0, due - time.monotonic()))
        t = time.perf_counter()
        if i % 2:
            cv2.resize(frames[i % len(frames)], (nw, nh), dst=shrunk, interpolation=cv2.INTER_LINEAR)
        det.engine.infer(feeds)
        ms = (time.perf_counter() - t) * 1e3
        if i >= 10:
            (floor if i % 2 else engine).append(ms)
    return {
        "rate_hz": rate_hz,
        "engine_alone": summary(engine),
        "resize_and_engine": summary(floor),
        "floor_ratio_median": statistics.median(floor) / statistics.median(engine),
    }


def bench_cross_process(frames: list[np.ndarray], count: int, engine_ms: float) -> dict[str, Any]:
    """Images published here -> detector node process -> detections back here."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from trt_perception.io.images import numpy_to_image
    from trt_perception.ros.node_base import use_fast_image_transport
    from trt_perception.ros.qos import reliable_qos, sensor_qos

    use_fast_image_transport()
    env = {**os.environ, "ROS_DOMAIN_ID": str(os.environ.get("ROS_DOMAIN_ID", 1 + os.getpid() % 9))}
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    exe = str(Path(sys.executable).parent / "detector")
    log = tempfile.NamedTemporaryFile(prefix="bench_detector_node_", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(
        [
            exe,
            "--ros-args",
            "--params-file",
            str(ROOT / "config/detector.yaml"),
            "-p",
            f"model:={DETECTOR}",
            "-p",
            "diagnostics_period:=0.5",
            "-p",
            "latency_window:=1000",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("bench_camera", context=ctx)
    from rclpy.executors import SingleThreadedExecutor

    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    pub = node.create_publisher(Image, "camera/image_raw", sensor_qos(5))
    latencies: dict[int, float] = {}
    diag: list[Any] = []
    sent: dict[int, int] = {}

    def on_dets(msg: Detection2DArray) -> None:
        stamp = stamp_ns(msg.header)
        if stamp in sent:
            latencies[stamp] = (time.time_ns() - stamp) * 1e-6

    node.create_subscription(Detection2DArray, "detections", on_dets, reliable_qos(50))
    node.create_subscription(DiagnosticArray, "/diagnostics", diag.append, reliable_qos(50))
    msgs = [numpy_to_image(f, "bgr8") for f in frames[:30]]
    try:
        deadline = time.monotonic() + 60
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.05)
        for _ in range(40):  # let discovery settle and the node warm up
            ex.spin_once(timeout_sec=0.05)
        # One frame at a time (each waits for its detections): latency without queueing.
        for i in range(count):
            m = msgs[i % len(msgs)]
            now = time.time_ns()
            set_time(m.header.stamp, now)
            sent[now] = i
            pub.publish(m)
            t_end = time.monotonic() + 2.0
            while now not in latencies and time.monotonic() < t_end:
                ex.spin_once(timeout_sec=0.01)
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            ex.spin_once(timeout_sec=0.05)
    finally:
        node.destroy_node()
        rclpy.shutdown(context=ctx)
        proc.terminate()
        proc.wait(10)
        log.close()
    values = {
        kv.key: float(kv.value)
        for a in diag[-1:]
        for s in a.status
        for kv in s.values
        if kv.key.endswith(("p50_ms", "mean_ms"))
    }
    lat = list(latencies.values())
    if not lat:
        return {"error": f"no detections came back from the detector node; its log: {log.name}"}
    os.unlink(log.name)
    e2e = statistics.median(lat)
    transport = values.get("frame_age.p50_ms")
    node_engine = values.get("inference.p50_ms")
    return {
        "frames_sent": count,
        "frames_back": len(lat),
        "end_to_end": summary(lat),
        # The denominator is the engine call measured inside the detector process over the same
        # frames: engine time moves a lot between processes and minutes on a shared machine.
        "ratio_median": e2e / node_engine if node_engine else None,
        "engine_alone_in_this_process_median_ms": engine_ms,
        "image_transport_p50_ms": transport,
        "image_transport_share": None if transport is None else transport / e2e,
        "node_callback_p50_ms": values.get("end_to_end.p50_ms"),
        "node_inference_p50_ms": node_engine,
    }


def bench_nms(iters: int) -> dict[str, Any]:
    """YOLOv8 COCO head [1, 84, 8400]: 300 candidates above threshold among background noise."""
    from trt_perception.inference.engine import TensorSpec
    from trt_perception.vision.decoder_registry import make_decoder
    from trt_perception.vision.nms import best_class, nms

    rng = np.random.default_rng(0)
    out = np.zeros((1, 84, 8400), np.float32)
    out[0, :2] = rng.uniform(0, 640, (2, 8400))
    out[0, 2:4] = rng.uniform(8, 160, (2, 8400))
    out[0, 4:] = rng.uniform(0, 0.1, (80, 8400))
    hot = rng.choice(8400, 300, replace=False)
    out[0, 4 + rng.integers(0, 80, 300), hot] = rng.uniform(0.3, 1.0, 300)
    dec = make_decoder("yolov8")
    dec.bind([TensorSpec("output0", (1, 84, 8400))], 640, 640, 80)
    feeds = {"output0": out}
    cand = dec.decode(feeds, 0.25)

    def decode_and_nms() -> None:
        c = dec.decode(feeds, 0.25)
        nms(c.boxes, c.scores, c.class_ids, 0.45, 300)

    return {
        "candidates": 8400,
        "classes": 80,
        "above_threshold": len(cand.scores),
        "nms_only": timed(lambda: nms(cand.boxes, cand.scores, cand.class_ids, 0.45, 300), iters),
        "decode_and_nms": timed(decode_and_nms, iters),
        "class_max_only": timed(lambda: best_class(out[0, 4:], 0.25), iters),
        "kept": len(nms(cand.boxes, cand.scores, cand.class_ids, 0.45, 300)),
    }


def bench_plate_pipeline(max_frames: int) -> dict[str, Any]:
    from trt_perception.metrics.latency import LatencyRecorder
    from trt_perception.pipeline.perception import PerceptionPipeline
    from trt_perception.stages.detector import DetectorConfig
    from trt_perception.stages.plate_reader import PlateReaderConfig

    charset = ROOT / "models" / "plate_charset.txt"
    latency = LatencyRecorder(window=10_000)
    reader = PlateReaderConfig(model=str(READER), charset=str(charset) if charset.is_file() else "")
    stand_in = None
    if not READER.is_file():  # the sample reader is not built yet: a real pretrained CTC reader instead
        import rapidocr_onnxruntime

        path = Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_PP-OCRv4_rec_infer.onnx"
        reader = PlateReaderConfig(model=str(path), input_height=48, input_width=320)
        stand_in = f"{READER.name} missing: PP-OCRv4 rec (48x320) from rapidocr-onnxruntime instead"
    pipe = PerceptionPipeline.build(DetectorConfig(model=str(DETECTOR)), reader, latency=latency)
    pipe.warmup()
    cap = cv2.VideoCapture(str(VIDEO))
    frames, plates, read_ms = 0, 0, 0.0
    t0 = time.perf_counter()
    while not max_frames or frames < max_frames:
        t = time.perf_counter()
        ok, img = cap.read()
        read_ms += (time.perf_counter() - t) * 1e3
        if not ok:
            break
        plates += len(pipe(img, frames).plates)
        frames += 1
    wall = time.perf_counter() - t0
    cap.release()
    stages = {k: {"mean_ms": s.mean_ms, "p95_ms": s.p95_ms} for k, s in latency.summary().items()}
    e2e = latency.stats("end_to_end")
    return {
        "reader": _rel(Path(reader.model)),
        "reader_stand_in": stand_in,
        "frames": frames,
        "plates_read": plates,
        "fps_including_video_decode": frames / wall,
        "fps_pipeline": 1000.0 / e2e.mean_ms if e2e else None,
        "video_decode_mean_ms": read_ms / max(frames, 1),
        "stages": stages,
    }


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def main() -> int:
    global DETECTOR, READER
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--frames", type=int, default=0, help="plate pipeline frames (0: whole video)")
    ap.add_argument("--cross-frames", type=int, default=100)
    ap.add_argument("--skip-cross-process", action="store_true")
    ap.add_argument("--node-seconds", type=float, default=20.0, help="perception_pipeline node run time")
    ap.add_argument("--detector", default=str(DETECTOR), help="detector model (default: the sample model)")
    ap.add_argument(
        "--reader", default=str(READER), help="plate reader model (default: the sample CTC reader)"
    )
    args = ap.parse_args()
    DETECTOR, READER = Path(args.detector).resolve(), Path(args.reader).resolve()
    from trt_perception.ros.node_base import use_fast_image_transport

    # Fast DDS reads its profile when the process creates its first participant: set it up before any.
    use_fast_image_transport()

    result: dict[str, Any] = {
        "benchmark": "detection",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "models": {"detector": _rel(DETECTOR), "reader": _rel(READER)},
    }
    print("NMS 8400 x 80 ...", flush=True)
    result["nms_yolov8_8400x80"] = bench_nms(args.iters)
    targets = [
        target(
            "nms_8400x80_decode_and_nms_median_ms",
            result["nms_yolov8_8400x80"]["decode_and_nms"]["median_ms"],
            "<=",
            2.0,
            "ms",
        )
    ]
    if not DETECTOR.is_file():
        result["skipped"] = f"{DETECTOR} missing: detector measurements skipped"
    else:
        frames = sample_frames(60)
        print("per-frame overhead ...", flush=True)
        result["overhead_1280x720"] = bench_overhead(frames, args.iters)
        targets.append(
            target(
                "overhead_excluding_engine_median_ms",
                result["overhead_1280x720"]["total"]["median_ms"],
                "<=",
                3.0,
                "ms",
            )
        )
        print("in-process ratio ...", flush=True)
        result["in_process"] = bench_in_process(frames, min(args.iters, 150))
        targets.append(
            target("in_process_end_to_end_over_engine", result["in_process"]["ratio_median"], "<=", 1.15, "x")
        )
        print("perception_pipeline node (capture -> publish) ...", flush=True)
        eng = result["in_process"]["engine_alone"]["median_ms"]
        rate = max(1.0, min(30.0, 0.5 * 1000.0 / result["in_process"]["end_to_end"]["median_ms"]))
        result["in_process_node"] = bench_pipeline_node(rate, args.node_seconds)
        targets.append(
            target(
                "pipeline_node_captured_to_published_over_engine",
                result["in_process_node"]["ratio_median"],
                "<=",
                1.15,
                "x",
            )
        )
        print("paced floor (resize + engine at the node's rate) ...", flush=True)
        result["in_process_node"]["floor_paced"] = bench_paced_floor(frames, rate, 150)
        if not args.skip_cross_process:
            print("cross-process ratio ...", flush=True)
            result["cross_process"] = bench_cross_process(frames, args.cross_frames, eng)
        print("plate pipeline on the sample video ...", flush=True)
        result["plate_pipeline_video"] = bench_plate_pipeline(args.frames)
    result["targets"] = targets
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(
        json.dumps(
            {
                t["name"]: (round(t["value"], 3) if t["value"] is not None else None, t["pass"])
                for t in targets
            },
            indent=1,
        )
    )
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
