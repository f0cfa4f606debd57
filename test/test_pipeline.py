"""In-process pipeline: detector -> plate reader on numpy frames, as a library and as the
perception_pipeline node (one process: camera file in, detections and plates out)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from detection_models import constant_model, yolov8_output
from test_plate_reader_stage import pp_ocr_rec, rendered

from trt_perception.pipeline.perception import PerceptionPipeline
from trt_perception.pipeline.stamp_sync import StampMatcher
from trt_perception.stages.detector import DetectorConfig
from trt_perception.stages.plate_reader import PlateReaderConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
PLATE_BOX = [400.0, 300.0, 676.0, 364.0]  # where scene() pastes the text, 276x64


def scene(text: str = "AB12CDE") -> np.ndarray:
    frame = np.full((720, 1280, 3), 90, np.uint8)
    crop = rendered(text)
    frame[300 : 300 + crop.shape[0], 400 : 400 + crop.shape[1]] = crop
    return frame


def scene_video(tmp_path: Path, frames: int) -> Path:
    """An MJPG clip of ``frames`` copies of scene() at 10 fps, for the pipeline node's camera."""
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (1280, 720))
    for _ in range(frames):
        writer.write(scene())
    writer.release()
    return video


def plate_detector(tmp_path: Path) -> Path:
    """Constant detector output: the plate box of scene() and a car around it."""
    x1, y1, x2, y2 = (v * 0.5 for v in PLATE_BOX)
    y1, y2 = y1 + 140, y2 + 140
    boxes = np.array([[(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], [320, 320, 300, 200]])
    out = yolov8_output(boxes, np.array([1, 0]), np.array([0.8, 0.9]), nc=2)
    (tmp_path / "plates_labels.txt").write_text("car\nplate\n")
    return constant_model(tmp_path / "plates.onnx", {"output0": out}, input_shape=(1, 3, 640, 640))


def test_pipeline_reads_plates_in_process(tmp_path: Path) -> None:
    pipe = PerceptionPipeline.build(
        DetectorConfig(model=str(plate_detector(tmp_path))),
        PlateReaderConfig(model=str(pp_ocr_rec()), input_height=48, input_width=320),
    )
    pipe.warmup()
    result = pipe(scene(), stamp_ns=42)
    assert result.stamp_ns == 42 and sorted(result.detections.names()) == ["car", "plate"]
    assert [p.text for p in result.plates] == ["AB12CDE"]
    np.testing.assert_allclose(result.plates[0].box, PLATE_BOX, atol=0.5)
    stages = set(pipe.latency.stages())
    assert {"detector.inference", "plate_reader.inference", "plate_reader.crop", "end_to_end"} <= stages
    assert result.latency_ms > 0


def test_stamp_matcher_is_bounded_and_exact() -> None:
    m = StampMatcher(queue_size=3)
    assert m.add("a", 1, "img1") is None
    assert m.add("b", 2, "det2") is None
    assert m.add("b", 1, "det1") == ("img1", "det1", 1)
    for s in range(10, 20):
        m.add("a", s, s)
    assert m.pending()[0] == 3 and m.dropped >= 7
    approx = StampMatcher(queue_size=5, slop_ns=5)
    approx.add("a", 100, "img")
    assert approx.add("b", 103, "det") == ("img", "det", 103)
    assert approx.add("b", 200, "late") is None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("reader", "decoder"), [("plate_reader_ctc", "ctc"), ("plate_reader_heads", "heads")]
)
def test_sample_models_read_val_plates(sample_data: Any, reader: str, decoder: str) -> None:
    """Sample detector + reader on the held-out synthetic frames: >= 95% of plates read exactly."""
    det_model, reader_model = ROOT / "models/detector.onnx", ROOT / f"models/{reader}.onnx"
    charset = ROOT / "models/plate_charset.txt"
    pipe = PerceptionPipeline.build(
        DetectorConfig(model=str(det_model)),
        PlateReaderConfig(model=str(reader_model), decoder=decoder, charset=str(charset)),
    )
    coco = json.loads(Path(sample_data.val_coco).read_text())
    exact, total = 0, 0
    for img in coco["images"]:
        result = pipe(cv2.imread(str(Path(sample_data.images_dir) / img["file_name"])))
        for a in (a for a in coco["annotations"] if a["image_id"] == img["id"] and "text" in a):
            total += 1
            x, y, w, h = a["bbox"]
            gt = np.array([x, y, x + w, y + h])
            near = [p for p in result.plates if np.abs(p.box - gt).max() < max(w, h) * 0.5]
            exact += any(p.text == a["text"] for p in near)
    assert total > 0 and exact >= 0.95 * total, f"{exact}/{total} plates read exactly"


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("inline", [True, False], ids=["capture_thread", "worker_thread"])
def test_perception_pipeline_node(ros_node: Any, start_node: Any, tmp_path: Path, inline: bool) -> None:
    from vision_msgs.msg import Detection2DArray

    from trt_perception.ros.qos import reliable_qos

    video = scene_video(tmp_path, 8)
    got: dict[str, list[Any]] = {"detections": [], "plates": []}
    for topic, received in got.items():
        ros_node.create_subscription(Detection2DArray, topic, received.append, reliable_qos(50))
    proc = start_node(
        "perception_pipeline",
        params_file=CONFIG / "perception_pipeline.yaml",
        params={
            "camera.source": str(video),
            "camera.rate_hz": 10.0,
            "camera.loop": True,  # frames published before discovery completes are lost: keep sending
            "camera.process_in_capture_thread": inline,
            "detector.model": str(plate_detector(tmp_path)),
            "plate_reader.model": str(pp_ocr_rec()),
            "plate_reader.input_height": 48,
            "plate_reader.input_width": 320,
        },
    )
    assert ros_node.spin_until(lambda: len(got["plates"]) >= 3, 40), proc.log()
    plates = got["plates"][-1]
    assert [d.results[0].hypothesis.class_id for d in plates.detections] == ["AB12CDE"]
    det_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in got["detections"]}
    assert (plates.header.stamp.sec, plates.header.stamp.nanosec) in det_stamps, (
        "both outputs share the stamp"
    )
    assert plates.header.frame_id == "camera"
    assert proc.alive()


@pytest.mark.ros
@pytest.mark.slow
def test_enabled_false_pauses_the_stages_and_true_resumes(
    ros_node: Any, start_node: Any, tmp_path: Path
) -> None:
    """``enabled: false``: no stage runs (the detector's inference count stands still), nothing goes
    out, the camera stays open and its frames are counted as dropped; ``true`` resumes."""
    from diagnostic_msgs.msg import DiagnosticArray
    from ros_clients import set_params
    from vision_msgs.msg import Detection2DArray

    from trt_perception.ros.qos import reliable_qos

    video = scene_video(tmp_path, 4)
    detections: list[Any] = []
    ros_node.create_subscription(Detection2DArray, "detections", detections.append, reliable_qos(50))
    statuses: dict[str, Any] = {}
    ros_node.create_subscription(
        DiagnosticArray, "/diagnostics", lambda m: statuses.update({s.name: s for s in m.status}), 50
    )
    proc = start_node(
        "perception_pipeline",
        params_file=CONFIG / "perception_pipeline.yaml",
        params={
            "camera.source": str(video),
            "camera.rate_hz": 10.0,
            "camera.loop": True,
            "detector.model": str(plate_detector(tmp_path)),
            "plate_reader.enabled": False,
            "latency_window": 5000,  # window counts that do not saturate during the test
            "diagnostics_period": 0.2,
        },
    )

    def value(task: str, key: str) -> int:
        status = statuses.get(f"/perception_pipeline: {task}")
        kv = {k.key: k.value for k in status.values} if status is not None else {}
        return int(kv.get(key, 0))

    def inferences() -> int:
        return value("latency", "detector.inference.count")

    assert ros_node.spin_until(lambda: len(detections) >= 3 and inferences() >= 3, 60), proc.log()[-3000:]
    assert set_params(ros_node, "perception_pipeline", enabled=False).successful
    ros_node.spin_until(lambda: False, 1.0)  # a frame under way when the parameter came finishes
    counted, sent, dropped = inferences(), len(detections), value("input", "dropped.total")
    ros_node.spin_until(lambda: False, 2.5)
    summary = statuses["/perception_pipeline: perception_pipeline"]
    assert (inferences(), len(detections)) == (counted, sent), "a stage ran or an output went out"
    assert value("input", "dropped.total") >= dropped + 10, "the camera is no longer read"
    assert summary.message.startswith("paused (enabled: false)") and summary.level == bytes([0])
    assert set_params(ros_node, "perception_pipeline", enabled=True).successful
    resumed = lambda: len(detections) >= sent + 3 and inferences() >= counted + 3  # noqa: E731
    assert ros_node.spin_until(resumed, 30), proc.log()[-3000:]
    assert proc.alive()


@pytest.mark.slow
def test_segmenter_joins_the_chain(sample_data: Any) -> None:
    """The optional segmentation stage runs on the same frame; its mask matches the frame size."""
    models = [ROOT / "models" / f"{m}.onnx" for m in ("detector", "plate_reader_ctc", "segmenter")]
    from trt_perception.stages.segmenter import SegmenterConfig

    pipe = PerceptionPipeline.build(
        DetectorConfig(model=str(models[0])),
        PlateReaderConfig(model=str(models[1])),
        SegmenterConfig(model=str(models[2])),
    )
    coco = json.loads(Path(sample_data.val_coco).read_text())
    image = Path(sample_data.images_dir) / coco["images"][0]["file_name"]
    result = pipe(cv2.imread(str(image)))
    truth = cv2.imread(str(Path(sample_data.masks_dir) / (image.stem + ".png")), cv2.IMREAD_GRAYSCALE)
    assert result.segmentation.mask.shape == truth.shape
    assert (result.segmentation.mask == truth).mean() > 0.8
    assert {"segmenter.inference", "detector.inference", "plate_reader.inference"} <= set(
        pipe.latency.stages()
    )


@pytest.mark.ros
@pytest.mark.slow
def test_node_tracks_vehicles_with_stable_ids_and_one_event_each(
    ros_node: Any, start_node: Any, sample_data: Any
) -> None:
    """The sample video (traffic: vehicles entering, leaving, passing) through the node with the
    committed models: each vehicle's plate is published under one track ID, and every readable
    vehicle gets exactly one ``final`` and one ``ended`` event with its ground-truth text."""
    from std_msgs.msg import String
    from vision_msgs.msg import Detection2DArray

    from trt_perception.ros.qos import latched_qos, reliable_qos

    tracks: list[Any] = []
    events: list[dict[str, Any]] = []
    ros_node.create_subscription(Detection2DArray, "tracks", tracks.append, reliable_qos(50))
    ros_node.create_subscription(
        String, "plate_events", lambda m: events.append(json.loads(m.data)), latched_qos(100)
    )
    proc = start_node(
        "perception_pipeline",
        params_file=CONFIG / "perception_pipeline.yaml",
        params={
            "camera.source": str(sample_data.video),
            "detector.model": str(ROOT / "models/detector.onnx"),
            "plate_reader.model": str(ROOT / "models/plate_reader_ctc.onnx"),
            "plate_reader.charset": str(ROOT / "models/plate_charset.txt"),
        },
    )
    gt = json.loads(Path(sample_data.root / "sample_scene_gt.json").read_text())
    texts = _readable_texts(gt)
    finished = lambda: sum(e["event"] == "ended" for e in events) >= len(texts)  # noqa: E731
    assert ros_node.spin_until(finished, 90), (events, proc.log()[-3000:])
    ros_node.spin_until(lambda: False, 1.0)  # nothing more may come
    final = [e for e in events if e["event"] == "final"]
    ended = [e for e in events if e["event"] == "ended"]
    assert sorted(e["text"] for e in final) == sorted(texts), (final, texts)
    assert sorted(e["track_id"] for e in final) == sorted({e["track_id"] for e in final}), (
        "one final per vehicle"
    )
    assert sorted(e["track_id"] for e in ended) == sorted(e["track_id"] for e in final), (
        "one ended per vehicle"
    )
    for e in ended:
        assert e["last_stamp_ns"] > e["first_stamp_ns"] and e["frames_seen"] > e["reads"] > 0
        crop = cv2.imdecode(
            np.frombuffer(base64.b64decode(e["crop_jpeg_base64"]), np.uint8), cv2.IMREAD_COLOR
        )
        assert crop is not None and crop.shape[1] > crop.shape[0] > 8
    # Stable IDs: in the tracks topic a plate text is only ever shown under one track ID.
    owner: dict[str, set[str]] = {}
    for msg in tracks:
        for d in msg.detections:
            assert d.id.isdigit()
            if len(d.results) > 1:
                owner.setdefault(d.results[1].hypothesis.class_id, set()).add(d.id)
    assert owner and all(len(ids) == 1 for ids in owner.values()), owner
    assert proc.alive()


def _readable_texts(coco: dict[str, Any], min_px: float = 14.0, min_frames: int = 5) -> list[str]:
    """Plate texts of the vehicles whose plate is at least ``min_px`` tall in ``min_frames`` frames."""
    frames: dict[str, int] = {}
    for a in coco["annotations"]:
        if a.get("text") and a["bbox"][3] >= min_px:
            frames[a["text"]] = frames.get(a["text"], 0) + 1
    return sorted(t for t, n in frames.items() if n >= min_frames)
