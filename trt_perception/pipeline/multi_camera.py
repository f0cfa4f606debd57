"""Many cameras, one engine call (ROS-free): N sources -> muxer -> batched detector -> per-camera
tracker -> the plate crops of all cameras in one reader call -> per-camera plate consensus.

What DeepStream does with ``nvstreammux`` and a batched primary/secondary ``nvinfer``: the detector
runs once per batch instead of once per camera (``Detector.detect_batch``: each frame letterboxed
into its slot), the secondary reader once for every plate of every camera. State that belongs to a
camera stays per camera: one ``Tracker`` and one ``PlateConsensus`` each, so each camera's results
are those it gets when run alone (``test/test_multi_camera.py``).

``MultiCameraPipeline(batch) -> BatchResult`` is the synchronous core (no threads); the
``MultiCameraRunner`` adds the capture: one ``CameraSource`` per camera pushing into a ``Muxer`` (a
camera that stalls delays the others by the muxer timeout at most; one that ends is not waited for),
and the pipeline on each released batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..metrics.latency import END_TO_END, LatencyRecorder
from ..stages.camera import ENDED, CameraConfig, CameraSource, CameraState, Frame, Log
from ..stages.detector import Detector, DetectorConfig
from ..stages.plate_consensus import PlateConsensus, PlateConsensusConfig, PlateEvent
from ..stages.plate_reader import PlateReader, PlateReaderConfig
from ..stages.tracker import Tracker, TrackerConfig
from .muxer import Batch, Muxer, MuxSource, SourceFrame
from .perception import CONSENSUS, DETECTOR, PLATE_READER, TRACKER, PipelineResult, _track_classes


@dataclass
class CameraResult:
    """One camera's share of a batch: its frame's source, header data and the chain's result
    (detections, tracks, plates, plate events, reads) as the single-camera pipeline gives it, and the
    frame itself (a node publishes or draws on it)."""

    source: int
    name: str
    frame_id: str
    seq: int
    result: PipelineResult
    image: np.ndarray


@dataclass(frozen=True)
class BatchStats:
    """Per-batch figures for diagnostics: how full, how long the muxer waited, what the models took."""

    size: int
    fill: float
    timed_out: bool
    wait_ms: float
    #: The detector's engine time for the whole batch (one call), and its whole stage (letterbox + decode).
    inference_ms: float
    detector_ms: float
    #: Plate crops of all cameras read, and the reader's time for them.
    plate_crops: int
    reader_ms: float
    #: The whole batch through the chain.
    total_ms: float


@dataclass
class BatchResult:
    cameras: list[CameraResult]
    stats: BatchStats


@dataclass
class CameraChain:
    """What belongs to one camera: its tracker and plate consensus (None when the chain has none)."""

    tracker: Tracker | None = None
    consensus: PlateConsensus | None = None


class MultiCameraPipeline:
    """``MultiCameraPipeline.build(cameras, detector_cfg, ...)(batch) -> BatchResult``.

    The chain per camera is ``PerceptionPipeline.build``'s: tracking when ``tracker`` is given, then
    per-vehicle plate consensus (``consensus``, defaults when None) with a reader; without a tracker
    the reader reads every plate. Latencies land in one recorder under the single pipeline's names
    (``detector.*`` per batch call, ``tracker.*`` per camera frame, ``end_to_end`` per batch).
    """

    def __init__(
        self,
        detector: Detector,
        cameras: Sequence[CameraChain],
        reader: PlateReader | None = None,
        latency: LatencyRecorder | None = None,
    ) -> None:
        if not cameras:
            raise ValueError("a multi-camera pipeline needs at least one camera")
        self.detector = detector
        self.reader = reader
        self.cameras = list(cameras)
        self.latency = latency or detector.latency

    @classmethod
    def build(
        cls,
        cameras: int,
        detector: DetectorConfig,
        plate_reader: PlateReaderConfig | None = None,
        tracker: TrackerConfig | None = None,
        consensus: PlateConsensusConfig | None = None,
        latency: LatencyRecorder | None = None,
    ) -> MultiCameraPipeline:
        """One detector taking ``cameras`` frames per call (``EngineError`` at once when its model's
        batch is fixed), one reader, a tracker and a plate consensus per camera."""
        latency = latency or LatencyRecorder()
        det = Detector(detector, latency, prefix=DETECTOR, max_batch=cameras)
        reader = PlateReader(plate_reader, latency, prefix=PLATE_READER) if plate_reader else None
        chains = []
        for _ in range(cameras):
            trk = cons = None
            if tracker is not None:
                plate_class = plate_reader.plate_class if plate_reader else ""
                trk = Tracker(_track_classes(tracker, det.labels, plate_class), latency, TRACKER)
                if reader is not None:
                    cons = PlateConsensus(consensus or PlateConsensusConfig(), reader, latency, CONSENSUS)
            chains.append(CameraChain(trk, cons))
        return cls(det, chains, reader, latency)

    def __call__(self, batch: Batch | Sequence[SourceFrame]) -> BatchResult:
        frames = batch.frames if isinstance(batch, Batch) else tuple(batch)
        t0 = time.perf_counter()
        dets = self.detector.detect_batch([f.image for f in frames])
        inference_ms = self.detector.engine.last_latency_ms
        t1 = time.perf_counter()
        results = [PipelineResult(f.stamp_ns, d) for f, d in zip(frames, dets)]
        for f, r in zip(frames, results):
            tracker = self.cameras[f.source].tracker
            if tracker is not None:
                r.tracks = tracker(r.detections, f.stamp_ns)
        t2 = time.perf_counter()
        crops = self._read(frames, results)
        t3 = time.perf_counter()
        total_ms = (t3 - t0) * 1e3
        for r in results:
            r.latency_ms = total_ms
        self.latency.record(END_TO_END, total_ms)
        wait_ms, timed_out = (
            (batch.waited_s * 1e3, batch.timed_out) if isinstance(batch, Batch) else (0.0, False)
        )
        stats = BatchStats(
            len(frames),
            len(frames) / len(self.cameras),
            timed_out,
            wait_ms,
            inference_ms,
            (t1 - t0) * 1e3,
            crops,
            (t3 - t2) * 1e3,
            total_ms,
        )
        cams = [
            CameraResult(f.source, f.name, f.frame_id, f.seq, r, f.image) for f, r in zip(frames, results)
        ]
        return BatchResult(cams, stats)

    def _read(self, frames: Sequence[SourceFrame], results: list[PipelineResult]) -> int:
        """Plates of every camera through one reader call; the number of crops read."""
        if self.reader is None:
            return 0
        if all(self.cameras[f.source].consensus is not None for f in frames):
            works = [
                self.cameras[f.source].consensus.gather(f.image, r.detections, r.tracks, f.stamp_ns)  # type: ignore[union-attr,arg-type]
                for f, r in zip(frames, results)
            ]
            crops = [c for w in works for c in w.crops]
            readings = self.reader.read_crops(crops, per_char=True) if crops else []
            start = 0
            for f, r, w in zip(frames, results, works):
                mine = readings[start : start + len(w.crops)]
                start += len(w.crops)
                out = self.cameras[f.source].consensus.complete(w, mine)  # type: ignore[union-attr,arg-type]
                r.plates = [p for p in out.plates if p.text]
                r.events, r.reads, r.readings = out.events, out.reads, out.readings
            return len(crops)
        plates = self.reader.read_batch([f.image for f in frames], [r.detections for r in results])
        for r, readings_of_frame in zip(results, plates):
            r.plates = readings_of_frame
            r.reads = len(self.reader.select(r.detections))
            r.readings = [(p.box, p.text) for p in readings_of_frame]
        return sum(r.reads for r in results)

    def warmup(self) -> None:
        """Every batch size the run may see (1..N cameras), so no real batch pays the runtime's set-up."""
        w, h = self.detector.input_size
        grey = [np.full((h, w, 3), 114, np.uint8)] * len(self.cameras)
        for n in range(1, len(self.cameras) + 1):
            self.detector.detect_batch(grey[:n])
        if self.reader is not None:
            self.reader.warmup()

    def flush(self, source: int) -> list[PlateEvent]:
        """Camera ``source`` has ended: the ENDED events of its vehicles still tracked."""
        consensus = self.cameras[source].consensus
        return consensus.flush() if consensus is not None else []


class MultiCameraRunner:
    """Captures N cameras into a muxer and runs ``pipeline`` on each batch.

    ``on_batch(result)`` after each batch; ``on_error(exc)`` when the pipeline raises on a batch (the
    run goes on); ``on_end(source, state, events)`` once per camera when it has ended, with the
    events of its flush. ``sources`` name the cameras (names/namespaces and frame_ids); by default
    ``camera0``, ``camera1``... No ``cameras`` (an empty sequence): the frames are pushed into
    ``muxer`` from outside (image topics), one source per camera of ``pipeline``. While ``enabled()``
    is false (a node's ``enabled`` parameter) the stages pause: the cameras stay open, each batch's
    frames are dropped and counted per camera in ``paused_drops``. ``log`` is the cameras'.
    """

    def __init__(
        self,
        pipeline: MultiCameraPipeline,
        cameras: Sequence[CameraConfig],
        on_batch: Callable[[BatchResult], None],
        sources: Sequence[MuxSource] | None = None,
        timeout_s: float = 0.05,
        on_error: Callable[[Exception], None] | None = None,
        on_end: Callable[[int, CameraState, list[PlateEvent]], None] | None = None,
        enabled: Callable[[], bool] = lambda: True,
        log: Log | None = None,
    ) -> None:
        n = len(pipeline.cameras)
        if cameras and len(cameras) != n:
            raise ValueError(f"{len(cameras)} camera configs for a pipeline of {n} cameras")
        self.pipeline = pipeline
        self.camera_cfgs = list(cameras)
        srcs = list(sources) if sources is not None else [MuxSource(f"camera{i}") for i in range(n)]
        if len(srcs) != n:
            raise ValueError(f"{len(srcs)} sources named for {n} cameras")
        self.muxer = Muxer(srcs, timeout_s)
        self.cameras: list[CameraSource] = []
        self.batches = 0
        self._on_batch, self._on_error, self._on_end = on_batch, on_error, on_end
        self._enabled, self._log = enabled, log
        #: Frames of each camera dropped while paused (``enabled()`` false).
        self.paused_drops = [0] * n
        self._ended = [False] * n
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    def start(self, worker: bool = False) -> MultiCameraRunner:
        """Open every camera (``CameraError`` for one that can never work); ``worker``: a thread runs
        ``run()``, else the caller does."""
        for i, cfg in enumerate(self.camera_cfgs):
            self.cameras.append(CameraSource(cfg, on_frame=self._pusher(i), log=self._log).start())
        if worker:
            self._worker = threading.Thread(target=self.run, name="multi-camera-pipeline", daemon=True)
            self._worker.start()
        return self

    def _pusher(self, source: int) -> Callable[[Frame], None]:
        # In the capture thread: hand the frame over and return (the muxer never blocks a camera).
        def push(frame: Frame) -> None:
            self.muxer.push(source, frame.image, frame.stamp_ns, frame.seq)

        return push

    @property
    def states(self) -> list[CameraState]:
        """Each camera's state (``stages.camera.camera_status`` maps one to a diagnostics level)."""
        return [c.state for c in self.cameras]

    @property
    def running(self) -> bool:
        if self._worker is not None:
            return self._worker.is_alive()
        return not all(self._ended)

    def run(self, keep_going: Callable[[], bool] = lambda: True, timeout_s: float = 0.2) -> None:
        """Process batches in this thread until every camera has ended, ``stop()`` or ``keep_going()``
        turns false."""
        while not self._stop.is_set() and keep_going():
            self.poll()
            batch = self.muxer.next_batch(timeout_s)
            if batch is not None:
                self.process(batch)
            elif all(self._ended):
                return

    def process(self, batch: Batch) -> None:
        if not self._enabled():  # paused: the frames were read, the stages do not run
            for f in batch.frames:
                self.paused_drops[f.source] += 1
            return
        try:
            result = self.pipeline(batch)
            self._on_batch(result)
        except Exception as exc:  # one bad batch must not end the capture of every camera
            if self._on_error is None:
                raise
            self._on_error(exc)
        self.batches += 1

    def poll(self) -> None:
        """Cameras that ended since the last poll: the muxer stops waiting for them; their flush."""
        for i, cam in enumerate(self.cameras):
            state = cam.state
            if self._ended[i] or state.status not in ENDED:
                continue
            self._ended[i] = True
            self.muxer.end(i)
            events = self.pipeline.flush(i)
            if self._on_end is not None:
                self._on_end(i, state, events)

    def stop(self) -> None:
        self._stop.set()
        self.muxer.close()
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(5.0)
        for cam in self.cameras:
            cam.stop()
