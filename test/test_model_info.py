"""Issue 14: a model's identity (``ModelInfo``) travels with it, and a mismatch is an error, not a
silently wrong result. One test per case the issue lists, on the real sample models and PP-OCRv4."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from conftest import ppocr_rec_model
from detection_models import constant_model

from trt_perception.inference.engine import EngineError
from trt_perception.inference.engine_sidecar import engine_metadata
from trt_perception.inference.factory import open_engine
from trt_perception.inference.model_info import METADATA_KEY, onnx_info, parse_names, resolve
from trt_perception.io.video import video_frames
from trt_perception.modelops.engine_cache import BuildRecipe, EngineCache, Target
from trt_perception.stages.detector import Detector, DetectorConfig
from trt_perception.stages.plate_reader import PlateReader, PlateReaderConfig
from trt_perception.vision.preprocess import Preprocessor, preset

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
VIDEO = ROOT / "data" / "sample_scene.mp4"


def _frames(n: int) -> list[np.ndarray]:
    frames = video_frames(VIDEO, n)
    if not frames:
        pytest.skip("data/sample_scene.mp4 missing (tools/make_samples.py)")
    return frames


def _copy_without(src: Path, dst: Path, *keys: str) -> Path:
    """A copy of a sample model whose metadata lacks ``keys`` (as a third-party model would)."""
    model = onnx.load(str(src))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in keys]
    del model.metadata_props[:]
    for k, v in kept:
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(dst))
    return dst


def _plates_read(detector: Detector, reader: PlateReader, frames: list[np.ndarray]) -> int:
    return sum(len(reader(f, detector(f))) for f in frames)


# -- TensorRT engines keep labels and the character set (engine-cache sidecar) ------------------------


@pytest.mark.parametrize("name", ["detector", "plate_reader_ctc"])
def test_engine_sidecar_carries_labels_and_charset(tmp_path: Path, name: str) -> None:
    """The cache code alone (a stand-in build): what TensorRTEngine.metadata reads back from the
    sidecar resolves to the same labels/charset/decoder as the ONNX, sidecar-file labels included."""
    src = tmp_path / f"{name}.onnx"
    _copy_without(MODELS / f"{name}.onnx", src, "names")  # detector: labels only in the sidecar file
    if name == "detector":
        shutil.copy(MODELS / "detector_labels.txt", tmp_path / "detector_labels.txt")
    onnx_side = onnx_info(src)
    target = Target("10.0", "GPU", "8.6")
    result = EngineCache(tmp_path / "cache").ensure(src, BuildRecipe("fp16"), target, lambda *_: b"plan")
    (tmp_path / "detector_labels.txt").unlink(missing_ok=True)  # the engine must not need it
    meta = engine_metadata(result.path)
    engine_side = resolve(meta, [], [], result.path)
    assert engine_side.labels == onnx_side.labels
    assert engine_side.charset == onnx_side.charset
    assert engine_side.decoder == onnx_side.decoder
    assert engine_side.precision == "fp16" and engine_side.source_sha256 == onnx_side.source_sha256
    if name == "detector":
        assert engine_side.labels == ("car", "plate")
    else:
        assert len(engine_side.charset) == 33 and engine_side.decoder == "ctc"


# -- quantized copies keep labels ------------------------------------------------------------------


@pytest.fixture(scope="module")
def int8_detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``trt-perception quantize models/detector.onnx --int8 det_int8_cpu.onnx`` (labels only in a sidecar)."""
    from trt_perception.cli import main

    tmp = tmp_path_factory.mktemp("int8")
    (tmp / "src").mkdir()
    src = _copy_without(MODELS / "detector.onnx", tmp / "src" / "detector.onnx", "names")
    shutil.copy(MODELS / "detector_labels.txt", tmp / "src" / "detector_labels.txt")
    calib = tmp / "calib"
    calib.mkdir()
    for i, f in enumerate(_frames(8)):
        cv2.imwrite(str(calib / f"{i}.png"), f)
    out = tmp / "det_int8_cpu.onnx"
    args = ["quantize", str(src), "--int8", str(out), "--calib-images", str(calib), "--count", "8"]
    assert main([*args, "--target", "cpu"]) == 0
    return out


def test_int8_copy_keeps_labels_and_reads_plates(int8_detector: Path) -> None:
    det = Detector(DetectorConfig(model=str(int8_detector)))
    assert det.labels == ["car", "plate"] and det.info.precision == "int8"
    assert det.warnings == []
    reader = PlateReader(PlateReaderConfig(model=str(MODELS / "plate_reader_ctc.onnx")))
    assert _plates_read(det, reader, _frames(30)) > 0


def test_evaluate_takes_precision_from_the_model(int8_detector: Path, tmp_path: Path) -> None:
    from trt_perception.evaluation.configs import parse_model_arg
    from trt_perception.modelops.precision import to_fp16

    assert parse_model_arg(str(int8_detector), "onnxruntime").precision == "int8"  # not "fp32" by name
    fp16 = to_fp16(MODELS / "detector.onnx", tmp_path / "detector_int8.onnx")  # a misleading name
    assert parse_model_arg(str(fp16), "onnxruntime").precision == "fp16"
    assert parse_model_arg(str(MODELS / "detector.onnx"), "onnxruntime").precision == "fp32"


# -- Ultralytics metadata ---------------------------------------------------------------------------


def test_ultralytics_metadata_is_honoured(tmp_path: Path) -> None:
    """``names`` as a Python dict string, ``imgsz`` sizing a dynamic input, ``task``."""
    names = "{0: 'person', 1: 'bicycle', 2: 'car'}"
    out = np.zeros((1, 7, 8400), np.float32)
    out[0, :4, 0] = [320, 320, 100, 100]
    out[0, 4 + 2, 0] = 0.9  # one car
    model = constant_model(
        tmp_path / "yolo11n.onnx",
        {"output0": out},
        input_shape=(1, 3, "height", "width"),
        metadata={"names": names, "imgsz": "[640, 640]", "stride": "32", "task": "detect"},
    )
    det = Detector(DetectorConfig(model=str(model)))
    assert (
        det.labels == ["person", "bicycle", "car"] and det.info.source("labels") == "model metadata 'names'"
    )
    assert det.input_size == (640, 640) and det.info.task == "detect"
    dets = det(np.zeros((640, 640, 3), np.uint8))
    assert dets.names() == ["car"]  # not class id '2'
    assert parse_names("{0: 'a', 1: 'b'}") == ["a", "b"] == parse_names('{"0": "a", "1": "b"}')


def test_label_count_must_match_the_class_dimension(tmp_path: Path) -> None:
    labels = tmp_path / "three.txt"
    labels.write_text("car\nplate\nbus\n")
    copy = _copy_without(MODELS / "detector.onnx", tmp_path / "det.onnx", "names")
    with pytest.raises(EngineError, match=r"2 classes but the labels list 3.*labels from parameter 'labels'"):
        Detector(DetectorConfig(model=str(copy), labels=str(labels)))


def test_missing_labels_are_a_warning(tmp_path: Path) -> None:
    copy = _copy_without(MODELS / "detector.onnx", tmp_path / "det.onnx", "names")
    det = Detector(DetectorConfig(model=str(copy)))
    assert det.labels == [] and any("no labels" in w for w in det.warnings)


def test_labels_parameter_contradicting_metadata_is_an_error(tmp_path: Path) -> None:
    labels = tmp_path / "swapped.txt"
    labels.write_text("plate\ncar\n")
    with pytest.raises(
        EngineError, match=r"labels .*parameter 'labels' contradicts .*model metadata 'names'"
    ):
        Detector(DetectorConfig(model=str(MODELS / "detector.onnx"), labels=str(labels)))


# -- decoder / pre-processing mismatches -----------------------------------------------------------


def test_heads_reader_uses_its_metadata_decoder() -> None:
    """``demo --reader models/plate_reader_heads.onnx`` with no decoder given: heads, from the model."""
    from tools.synth.plates import random_plate_text, reader_crop

    reader = PlateReader(PlateReaderConfig(model=str(MODELS / "plate_reader_heads.onnx")))
    assert reader.decoder == "heads" and reader.info.source("decoder") == "model metadata 'decoder'"
    rng = np.random.default_rng(7)
    texts = [random_plate_text(rng) for _ in range(20)]
    read = [t for t, _ in reader.read_crops([reader_crop(t, rng, plate_height=(28, 48)) for t in texts])]
    assert sum(r == t for r, t in zip(read, texts)) >= 18


def test_decoder_parameter_contradicting_the_model_is_a_startup_error() -> None:
    """``plate_reader -p decoder:=heads`` on the CTC model."""
    with pytest.raises(
        EngineError,
        match=r"decoder 'heads' from parameter 'decoder' contradicts 'ctc' from model metadata 'decoder'",
    ):
        PlateReader(PlateReaderConfig(model=str(MODELS / "plate_reader_ctc.onnx"), decoder="heads"))


def test_yolox_model_takes_its_preset_or_fails_clearly(tmp_path: Path) -> None:
    n = 80 * 80 + 40 * 40 + 20 * 20
    model = constant_model(
        tmp_path / "yolox_s.onnx",
        {"output": np.zeros((1, n, 7), np.float32)},
        input_shape=(1, 3, 640, 640),
        metadata={"decoder": "yolox", "names": '["car", "plate"]'},
    )
    det = Detector(DetectorConfig(model=str(model)))  # no preprocess given: YOLOX's own
    pc = det.preprocessor.config
    assert (pc.rgb, pc.scale, pc.center, pc.truncate) == (False, 1.0, False, True)
    with pytest.raises(
        EngineError,
        match=r"decoder 'yolox' \(model metadata 'decoder'\) needs preprocess 'yolox'.*'yolo' \(parameter 'preprocess'\)",
    ):
        Detector(DetectorConfig(model=str(model), preprocess="yolo"))


# -- the yolox preset is YOLOX's preproc, byte for byte ----------------------------------------------


def _yolox_reference(img: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Written here from Megvii-BaseDetection/YOLOX ``yolox/data/data_augment.py`` ``preproc``."""
    padded = np.ones((input_size[0], input_size[1], 3), dtype=np.uint8) * 114
    r = min(input_size[0] / img.shape[0], input_size[1] / img.shape[1])
    new_w, new_h = int(img.shape[1] * r), int(img.shape[0] * r)
    resized = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR).astype(np.uint8)
    padded[:new_h, :new_w] = resized
    return np.ascontiguousarray(padded.transpose(2, 0, 1), dtype=np.float32), r


@pytest.mark.parametrize(("w", "h"), [(1000, 570), (1280, 720), (333, 517), (1920, 1083), (641, 359)])
def test_yolox_preset_is_byte_identical_to_the_reference(w: int, h: int) -> None:
    rng = np.random.default_rng(w * h)
    img = rng.integers(0, 256, (h, w, 3), np.uint8)
    pre = Preprocessor(preset("yolox", width=640, height=640))
    tensor, box = pre(img)
    ref, r = _yolox_reference(img, (640, 640))
    assert tensor[0].tobytes() == ref.tobytes()
    assert box.scale_x == box.scale_y == r  # boxes go back through the one ratio, as YOLOX's demo


# -- PP-OCRv4: dynamic H and W, read at its native 48 x 320 ----------------------------------------


def _text_crop(text: str) -> np.ndarray:
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = cv2.getFontScaleFromHeight(font, 32)
    (w, h), base = cv2.getTextSize(text, font, scale, 3)
    img = np.full((h + base + 24, w + 24, 3), 255, np.uint8)
    cv2.putText(img, text, (12, 12 + h), font, scale, (0, 0, 0), 3, cv2.LINE_AA)
    return img


def test_ppocr_reads_at_its_native_size_without_size_parameters() -> None:
    from tools.synth.plates import random_plate_text

    reader = PlateReader(PlateReaderConfig(model=str(ppocr_rec_model()), max_batch=4))
    assert (reader.width, reader.height) == (320, 48)
    assert reader.info.source("input_size").startswith("family PaddleOCR")
    rng = np.random.default_rng(3)
    texts = [random_plate_text(rng) for _ in range(6)] + ["TRT 2026"]
    assert [t for t, _ in reader.read_crops([_text_crop(t) for t in texts])] == texts


# -- the engine interface --------------------------------------------------------------------------


def test_infer_is_one_template_method() -> None:
    engine = open_engine(MODELS / "pilotnet.onnx")
    feeds = {"image": np.zeros((1, 3, 66, 200), np.float32)}
    assert engine.infer(feeds)["cmd"].shape == (1, 2) and engine.last_latency_ms > 0
    with pytest.raises(EngineError, match="no device outputs"):
        engine.infer(feeds, outputs_on_device=True)
    with pytest.raises(EngineError, match=r"input 'image' expects shape"):
        engine.infer({"image": np.zeros((1, 3, 64, 200), np.float32)})
    assert engine.info.input_size == (200, 66) and engine.info.outputs == ("cmd",)


def test_copies_carry_the_record(tmp_path: Path) -> None:
    from trt_perception.modelops.precision import to_fp16

    src = _copy_without(MODELS / "detector.onnx", tmp_path / "d.onnx", "names")
    shutil.copy(MODELS / "detector_labels.txt", tmp_path / "d_labels.txt")
    out = to_fp16(src, tmp_path / "copies" / "anything.onnx")
    record = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}[METADATA_KEY])
    assert record["labels"] == ["car", "plate"] and record["precision"] == "fp16"
    assert record["sources"]["labels"] == "sidecar d_labels.txt"
