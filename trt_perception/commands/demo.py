"""``trt-perception demo``: the plate pipeline on the sample video with a live terminal view.

Camera (the video file) -> detector -> tracker -> per-vehicle plate reading in one process, the way
the ``perception_pipeline`` node runs it: tracked vehicles with their IDs and plate texts, frames per
second and per-stage latency are redrawn in the terminal while the video plays, and a summary of the
vehicles and their plates is printed when it ends. ``--no-tracking`` reads every plate of every
frame instead (the summary then counts texts by frames). ``--ros`` runs the real
``perception_pipeline`` node (publishing ``detections``, ``tracks``, ``plates``, ``plate_events`` and
``/diagnostics``) and shows the same view from its results.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import cv2

from ..inference.factory import BACKENDS
from ..metrics.latency import LatencyRecorder
from ..pipeline.perception import PerceptionPipeline, PipelineResult
from ..pipeline.runner import PipelineRunner
from ..stages.camera import CameraConfig, CameraError, Frame
from ..stages.detector import DetectorConfig
from ..stages.plate_reader import PlateReaderConfig
from ..stages.tracker import TrackerConfig
from ..vision.draw import draw_result

ROOT = Path(__file__).resolve().parents[2]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--video", default="data/sample_scene.mp4", help="video file, image folder, device or URL")
    p.add_argument(
        "--detector", default="models/detector.onnx", help="detector ONNX model or TensorRT engine"
    )
    p.add_argument("--reader", default="models/plate_reader_ctc.onnx", help="plate reader model or engine")
    p.add_argument(
        "--reader-decoder",
        default="",
        choices=("", "ctc", "heads"),
        help="default: from the model's metadata",
    )
    p.add_argument("--backend", default="auto", choices=BACKENDS)
    p.add_argument("--conf", type=float, default=0.25, help="detector confidence threshold")
    p.add_argument(
        "--realtime", action="store_true", help="play at the video's frame rate (default: as fast as it runs)"
    )
    p.add_argument("--loop", action="store_true", help="start the video again at its end (stop with Ctrl-C)")
    p.add_argument(
        "--max-frames", type=int, default=0, help="stop after this many frames (0: the whole video)"
    )
    p.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="run this many seconds, looping the video (0: until it ends); the summary gives FPS avg/min/max",
    )
    p.add_argument("--save", default="", help="write the annotated video here (.mp4)")
    p.add_argument("--plain", action="store_true", help="one log line per second instead of the live view")
    p.add_argument(
        "--ros", action="store_true", help="run the perception_pipeline ROS node and publish the results"
    )
    p.add_argument(
        "--no-tracking",
        action="store_true",
        help="read every plate of every frame (no vehicles, no consensus)",
    )


@dataclass
class DemoState:
    frames: int = 0
    total: int = 0
    backend: str = ""
    started: float = field(default_factory=time.perf_counter)
    last: Any = None
    plates_seen: Counter[str] = field(default_factory=Counter)
    #: Track ID -> its latest plate event (final, then ended) when tracking.
    vehicles: dict[int, Any] = field(default_factory=dict)
    final: set[int] = field(default_factory=set)  # vehicles whose text became final
    reads: int = 0
    fps_window: list[float] = field(default_factory=list)
    #: frames finished in each whole second since the start (FPS average/min/max of a long run)
    per_second: Counter[int] = field(default_factory=Counter)

    def fps(self) -> float:
        w = self.fps_window[-30:]
        return (len(w) - 1) / (w[-1] - w[0]) if len(w) > 1 and w[-1] > w[0] else 0.0

    def tick(self, result: Any) -> None:
        self.frames += 1
        self.last = result
        now = time.perf_counter()
        self.fps_window.append(now)
        self.per_second[int(now - self.started)] += 1
        del self.fps_window[:-60]
        self.reads += result.reads
        self.events(result.events)
        if result.tracks is None:
            for r in result.plates:
                self.plates_seen[r.text] += 1

    def fps_range(self) -> tuple[float, float, float] | None:
        """(average, minimum, maximum) FPS over the completed one-second windows; None before two."""
        done = [self.per_second[s] for s in range(int(time.perf_counter() - self.started))]
        if len(done) < 2:
            return None
        return sum(done) / len(done), float(min(done)), float(max(done))

    def expired(self, duration_s: float) -> bool:
        return duration_s > 0 and time.perf_counter() - self.started >= duration_s

    def events(self, events: list[Any]) -> None:
        for e in events:
            self.vehicles[e.track_id] = e
            if e.kind == "final":
                self.final.add(e.track_id)


def _path(p: str) -> str:
    """A path relative to the repository when it is not found from the working directory."""
    return p if not p or Path(p).exists() or not (ROOT / p).exists() else str(ROOT / p)


STAGES = (
    ("detector.preprocess", "detector  pre-process"),
    ("detector.inference", "detector  inference"),
    ("detector.postprocess", "detector  decode+NMS"),
    ("tracker.track", "tracker   associate"),
    ("plate_consensus.associate", "plates    assign+gate+crop"),
    ("plate_reader.crop", "reader    select+crop"),
    ("plate_reader.preprocess", "reader    pre-process"),
    ("plate_reader.inference", "reader    inference"),
    ("plate_reader.postprocess", "reader    CTC decode"),
    ("end_to_end", "end to end"),
)


def render(state: DemoState, latency: Any, width: int = 78) -> str:
    """The live view as text (also used for the final summary)."""
    bar = "─" * width
    done = f"{state.frames}/{state.total}" if state.total else str(state.frames)
    lines = [
        f"trt_perception plate pipeline   frame {done}   {state.fps():5.1f} FPS   backend {state.backend}",
        bar,
        f"{'stage':<28}{'mean ms':>10}{'p95 ms':>10}{'max ms':>10}",
    ]
    for key, name in STAGES:
        s = latency.stats(key)
        if s is not None:
            lines.append(f"{name:<28}{s.mean_ms:>10.2f}{s.p95_ms:>10.2f}{s.max_ms:>10.2f}")
    lines.append(bar)
    r = state.last
    if r is not None and r.tracks is not None:
        lines += _tracks_now(r)
    elif r is not None:
        counts = Counter(r.detections.names())
        lines.append("detections: " + (", ".join(f"{n} x{c}" for n, c in sorted(counts.items())) or "none"))
        for i in range(min(len(r.detections), 6)):
            x1, y1, x2, y2 = (int(v) for v in r.detections.boxes[i])
            lines.append(
                f"  {r.detections.label(i):<8} {r.detections.scores[i]:.2f}  [{x1:4d},{y1:4d},{x2:4d},{y2:4d}]"
            )
        lines.append(
            "plates now: " + ("  ".join(f"{p.text} ({p.confidence:.2f})" for p in r.plates) or "none")
        )
    if r is not None and r.tracks is not None:
        done = "  ".join(f"#{i} {e.text}" for i, e in sorted(state.vehicles.items())[-8:] if e.text)
        lines.append(f"vehicles read so far ({len(state.vehicles)}): {done or 'none'}")
        lines.append(
            f"reader: {state.reads} crops in {state.frames} frames ({state.reads / max(state.frames, 1):.2f}/frame)"
        )
    else:
        seen = "  ".join(f"{t} x{n}" for t, n in state.plates_seen.most_common(8))
        lines.append(f"plates read so far ({len(state.plates_seen)} distinct): {seen or 'none'}")
    return "\n".join(line[: width + 40] for line in lines)


def _tracks_now(r: Any) -> list[str]:
    """One line per tracked vehicle: ID, class, box, its plate text once confident."""
    dets, plates = r.tracks.detections, r.plate_of()
    lines = [f"tracks now: {len(r.tracks)}"]
    for i in range(min(len(r.tracks), 6)):
        track_id = int(r.tracks.ids[i])
        x1, y1, x2, y2 = (int(v) for v in dets.boxes[i])
        p = plates.get(track_id)
        text = f"{p.text} ({p.confidence:.2f}, {p.agreeing} agreeing)" if p is not None else "-"
        lines.append(f"  #{track_id:<4} {dets.label(i):<6} [{x1:4d},{y1:4d},{x2:4d},{y2:4d}]  {text}")
    return lines


class View:
    """Redraws the view in place on a terminal (ANSI), or logs a line per second otherwise."""

    def __init__(self, out: TextIO, plain: bool, period_s: float = 0.1) -> None:
        self.out = out
        self.live = out.isatty() and not plain
        self.period_s = period_s if self.live else 1.0
        self._next = 0.0
        self._lines = 0

    def update(self, state: DemoState, latency: Any, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now < self._next:
            return
        self._next = now + self.period_s
        if self.live:
            text = render(state, latency)
            up = f"\x1b[{self._lines}F" if self._lines else ""
            self.out.write(up + "\n".join(line + "\x1b[K" for line in text.split("\n")) + "\x1b[J\n")
            self._lines = text.count("\n") + 1
        else:
            e2e = latency.stats("end_to_end")
            plates = " ".join(p.text for p in state.last.plates) if state.last else ""
            self.out.write(
                f"frame {state.frames:5d}  {state.fps():5.1f} FPS  end-to-end "
                f"{e2e.mean_ms if e2e else 0:6.1f} ms  dets {len(state.last.detections) if state.last else 0:2d}  "
                f"plates: {plates}\n"
            )
        self.out.flush()


def run(args: argparse.Namespace) -> int:
    if args.ros:
        return _run_ros(args)
    latency = LatencyRecorder(window=1000)
    try:
        pipeline = PerceptionPipeline.build(
            DetectorConfig(model=_path(args.detector), backend=args.backend, conf_threshold=args.conf),
            PlateReaderConfig(
                model=_path(args.reader),
                backend=args.backend,
                decoder=args.reader_decoder,
                charset=_charset(args.reader),
            ),
            latency=latency,
            tracker=None if args.no_tracking else TrackerConfig(),
        )
        pipeline.warmup()
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    state = DemoState(total=_frame_count(_path(args.video)), backend=pipeline.detector.engine.backend)
    view = View(sys.stdout, args.plain)
    saver = _Saver(args.save)

    def on_result(frame: Frame, result: PipelineResult) -> None:
        state.tick(result)
        saver.write(frame.image, result)
        view.update(state, latency)

    camera = CameraConfig(
        source=_path(args.video),
        loop=args.loop or args.duration > 0,
        rate_hz=0.0 if args.realtime else 1000.0,
    )
    runner = PipelineRunner(pipeline, camera, on_result, on_end=lambda _state, events: state.events(events))
    try:
        runner.start()
    except (CameraError, OSError, ValueError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2

    def more() -> bool:
        return (not args.max_frames or state.frames < args.max_frames) and not state.expired(args.duration)

    try:
        runner.run(keep_going=more, timeout_s=5.0)
    except KeyboardInterrupt:
        pass
    finally:
        runner.stop()
        saver.close()
    runner.finish()  # the vehicles still in view end with the run
    view.update(state, latency, force=True)
    _summary(state, latency)
    return 0 if state.frames else 1


class _Saver:
    """The annotated video (``--save``), opened at the first frame; nothing without a path."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.writer: Any = None

    def write(self, bgr: Any, result: PipelineResult) -> None:
        if not self.path:
            return
        if self.writer is None:
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")  # type: ignore[attr-defined]
            self.writer = cv2.VideoWriter(self.path, fourcc, 30.0, (bgr.shape[1], bgr.shape[0]))
        self.writer.write(draw_result(bgr, result))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


def _charset(reader: str) -> str:
    """The plate models' character file when it sits next to the model (else the model's metadata)."""
    path = Path(_path(reader)).with_name("plate_charset.txt")
    return str(path) if path.is_file() else ""


def _frame_count(video: str) -> int:
    cap = cv2.VideoCapture(video)
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    cap.release()
    return max(n, 0)


def _summary(state: DemoState, latency: Any) -> None:
    wall = time.perf_counter() - state.started
    e2e = latency.stats("end_to_end")
    print(
        f"\n{state.frames} frames in {wall:.1f} s ({state.frames / max(wall, 1e-9):.1f} FPS overall"
        + (f", pipeline capacity {1000 / e2e.mean_ms:.1f} FPS at {e2e.mean_ms:.1f} ms/frame)" if e2e else ")")
    )
    fps = state.fps_range()
    if fps is not None:
        print(
            f"FPS over one-second windows: average {fps[0]:.1f}, minimum {fps[1]:.0f}, maximum {fps[2]:.0f}"
        )
    if state.last is not None and state.last.tracks is not None:
        _vehicle_summary(state)
        return
    # A plate entering the frame or blurred gives one-off partial readings: list the steady ones.
    steady = [(t, n) for t, n in state.plates_seen.most_common() if n >= 3]
    rare = sum(1 for n in state.plates_seen.values() if n < 3)
    if steady:
        print("plates read: " + ", ".join(f"{t} ({n} frames)" for t, n in steady))
    if rare:
        print(f"plus {rare} readings seen in fewer than 3 frames (plates entering the view, blur)")


def _vehicle_summary(state: DemoState) -> None:
    """One line per vehicle whose plate was read: its consensus text, confidence and support."""
    read = [e for _, e in sorted(state.vehicles.items())]
    final = [e for e in read if e.track_id in state.final]
    print(f"{len(final)} vehicles read ({state.reads} plate crops read in {state.frames} frames):")
    for e in final:
        print(
            f"  vehicle #{e.track_id}: {e.text}  (confidence {e.confidence:.2f}, {e.agreeing} of {e.reads} "
            f"readings agree, plate seen in {e.frames_seen} frames)"
        )
    unsure = len(read) - len(final)
    if unsure:
        print(
            f"plus {unsure} vehicle(s) whose plate was never read with confidence (too far, too short in view)"
        )


def _run_ros(args: argparse.Namespace) -> int:
    """The perception_pipeline node in this process; the view shows what it publishes."""
    # lazy: ROS 2 (rclpy, the node) only with --ros; the plain demo runs where ROS is not installed
    import rclpy

    from ..nodes import perception_pipeline as node_mod
    from ..ros.node_base import use_fast_image_transport

    use_fast_image_transport()
    overrides = [
        f"camera.source:={_path(args.video)}",
        f"camera.loop:={'true' if args.loop else 'false'}",
        f"camera.rate_hz:={0.0 if args.realtime else 1000.0}",
        f"detector.model:={_path(args.detector)}",
        f"detector.backend:={args.backend}",
        f"detector.conf_threshold:={args.conf}",
        f"plate_reader.model:={_path(args.reader)}",
        f"plate_reader.decoder:={args.reader_decoder or chr(39) * 2}",
        f"plate_reader.charset:={_charset(args.reader) or chr(39) * 2}",
        f"tracking.enabled:={'false' if args.no_tracking else 'true'}",
    ]
    ros_args = ["--ros-args"] + [a for o in overrides for a in ("-p", o)]
    rclpy.init(args=["demo", *ros_args])
    node = node_mod.PerceptionPipelineNode()
    state = DemoState(total=_frame_count(_path(args.video)))
    view = View(sys.stdout, args.plain)
    if node.pipeline is None:
        node.destroy_node()
        rclpy.shutdown()
        return 2
    state.backend = node.pipeline.detector.engine.backend + " + ROS 2 topics"
    node.result_hook = state.tick
    node.end_hook = state.events
    try:
        while rclpy.ok() and node.running:
            rclpy.spin_once(node, timeout_sec=0.05)
            view.update(state, node.latency)
            if (args.max_frames and state.frames >= args.max_frames) or state.expired(args.duration):
                break
    except KeyboardInterrupt:
        pass
    finally:
        node.on_shutdown()
        if node.runner is not None:  # the vehicles still in view end with the run
            node.runner.finish()
        view.update(state, node.latency, force=True)
        _summary(state, node.latency)
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0 if state.frames else 1


if __name__ == "__main__":  # ``python -m trt_perception.commands.demo`` (scripts/demo.sh)
    _parser = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
