"""PlateReader stage: crop selection (class, padding, min/max size), batching, CTC and heads decoding,
with a real pretrained recognizer (PP-OCRv4 rec from rapidocr-onnxruntime) and the sample readers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from detection_models import constant_model

from trt_perception.inference.engine import EngineError
from trt_perception.stages.plate_reader import PlateReader, PlateReaderConfig
from trt_perception.vision.detections import Detections

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["AB12CDE", "XK4821", "MZ 704", "HELLO 42", "RT90PQ"]


def pp_ocr_rec() -> Path:
    rapidocr = pytest.importorskip("rapidocr_onnxruntime")
    path = Path(rapidocr.__file__).parent / "models" / "ch_PP-OCRv4_rec_infer.onnx"
    if not path.is_file():
        pytest.skip(f"PP-OCRv4 rec not shipped in this rapidocr build: {path}")
    return path


def rendered(text: str) -> np.ndarray:
    img = np.full((64, 36 * len(text) + 24, 3), 235, np.uint8)
    cv2.putText(img, text, (12, 48), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (20, 20, 20), 3, cv2.LINE_AA)
    return img


def scene_with_plates(texts: list[str]) -> tuple[np.ndarray, Detections]:
    """A 1280x720 frame with the rendered texts pasted as 'plates' and their detector boxes."""
    frame = np.full((720, 1280, 3), 90, np.uint8)
    boxes = []
    for i, t in enumerate(texts):
        crop = rendered(t)
        x, y = 40 + (i % 2) * 620, 40 + (i // 2) * 200
        frame[y : y + crop.shape[0], x : x + crop.shape[1]] = crop
        boxes.append([x, y, x + crop.shape[1], y + crop.shape[0]])
    boxes.append([0, 600, 400, 720])  # a car: not read
    classes = [1] * len(texts) + [0]
    return frame, Detections(np.array(boxes), np.full(len(boxes), 0.9), np.array(classes), ["car", "plate"])


def test_pp_ocr_reads_rendered_crops_in_batches() -> None:
    reader = PlateReader(
        PlateReaderConfig(model=str(pp_ocr_rec()), input_height=48, input_width=320, max_batch=2)
    )
    assert len(reader.charset) == 6625  # 6623 metadata characters + blank + space
    out = reader.read_crops([rendered(t) for t in TEXTS])
    texts = [t for t, _ in out]
    exact = sum(t.replace(" ", "") == r.replace(" ", "") for t, r in zip(texts, TEXTS))
    assert exact >= 4, texts  # a generic Chinese/English recognizer: O vs 0 may swap on one
    assert all(0.5 < c <= 1.0 for _, c in out)
    assert reader.latency.stats("inference").count == 3  # 5 crops in batches of 2


def test_frame_crops_follow_class_and_size_limits() -> None:
    reader = PlateReader(
        PlateReaderConfig(model=str(pp_ocr_rec()), input_height=48, input_width=320, padding=0.05)
    )
    frame, dets = scene_with_plates(TEXTS[:3])
    readings = reader(frame, dets)
    assert len(readings) == 3, "the car box is not read"
    assert readings[0].text == "AB12CDE"
    np.testing.assert_allclose(readings[0].box, dets.boxes[0])
    reader.cfg.max_width = 250  # the 7-character plate (276 px) is now too wide
    assert [r.text for r in reader(frame, dets)] == ["XK4821", "MZ 704"]
    reader.cfg.max_width, reader.cfg.min_width, reader.cfg.min_height = 0, 1000, 0
    assert reader(frame, dets) == []
    reader.cfg.min_width, reader.cfg.plate_class = 0, "licence"
    assert reader(frame, dets) == []


def test_padding_clips_to_frame() -> None:
    reader = PlateReader(PlateReaderConfig(model=str(pp_ocr_rec()), input_height=48, padding=0.5))
    win = reader.crop_boxes(np.array([[0, 0, 100, 20], [500, 700, 600, 720]], np.float32), 640, 720)
    assert win.tolist() == [[0, 0, 150, 30], [450, 690, 640, 720]]


def heads_model(tmp_path: Path, text: str, heads: int = 8) -> Path:
    charset = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
    (tmp_path / "charset.txt").write_text("\n".join(charset) + "\n")
    probs = np.full((1, heads, len(charset) + 1), 0.01, np.float32)
    for k in range(heads):
        cls = charset.index(text[k]) + 1 if k < len(text) else 0
        probs[0, k, cls] = 0.9
    return constant_model(
        tmp_path / "heads.onnx", {"chars": probs}, input_name="x", input_shape=(1, 3, 32, 128)
    )


def test_heads_decoder_with_static_batch(tmp_path: Path) -> None:
    model = heads_model(tmp_path, "AB123CD")
    reader = PlateReader(
        PlateReaderConfig(model=str(model), decoder="heads", charset=str(tmp_path / "charset.txt"))
    )
    assert (reader.width, reader.height) == (128, 32)
    crops = [np.zeros((20, 80, 3), np.uint8)] * 3  # a batch-1 engine: three calls
    assert [t for t, _ in reader.read_crops(crops)] == ["AB123CD"] * 3


def test_wrong_reader_layout_fails_clearly(tmp_path: Path) -> None:
    model = constant_model(tmp_path / "bad.onnx", {"y": np.zeros((1, 10), np.float32)}, input_name="x")
    (tmp_path / "chars.txt").write_text("A\nB\n")
    with pytest.raises(EngineError, match=r"expects an output \[N, T\|K, C\]"):
        PlateReader(PlateReaderConfig(model=str(model), charset=str(tmp_path / "chars.txt"), output="y"))
    with pytest.raises(ValueError, match="unknown plate decoder"):
        PlateReader(PlateReaderConfig(model=str(model), decoder="beam"))


@pytest.mark.parametrize(("name", "decoder"), [("plate_reader_ctc", "ctc"), ("plate_reader_heads", "heads")])
def test_sample_readers_on_sample_crops(name: str, decoder: str) -> None:
    """The stage reads >= 95% of fresh crops like the sample scenes' plates (20-56 px) exactly with
    the shipped readers. (The models' own floor over the harder 12-48 px range, where 60 crops are
    too few to tell 0.95 from 0.96, is ``test_plate_models``' job, on 300.)"""
    model = ROOT / "models" / f"{name}.onnx"
    from tools.synth.plates import random_plate_text, reader_crop

    rng = np.random.default_rng(1234)
    texts = [random_plate_text(rng) for _ in range(60)]
    crops = [reader_crop(t, rng, plate_height=(20, 56)) for t in texts]
    charset = ROOT / "models" / "plate_charset.txt"
    reader = PlateReader(
        PlateReaderConfig(
            model=str(model), decoder=decoder, charset=str(charset) if charset.is_file() else ""
        )
    )
    got = [t for t, _ in reader.read_crops(crops)]
    exact = np.mean([g == t for g, t in zip(got, texts)])
    assert exact >= 0.95, list(zip(got, texts))


def test_heads_format_head_restricts_characters(tmp_path: Path) -> None:
    """A format head (the thesis' country output) picks the layout; its letters/digits mask the heads."""
    charset = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
    classes = ["", *charset]
    probs = np.full((1, 7, len(classes)), 0.001, np.float32)
    for k, ch in enumerate("AB8CDEF"):
        probs[0, k, classes.index(ch)] = 0.5
    probs[0, 2, classes.index("B")] = 0.6  # head 2 prefers the letter B over the digit 8
    fmt = np.array([[0.9, 0.1]], np.float32)  # LLDDDLL
    model = constant_model(
        tmp_path / "fmt.onnx",
        {"chars": probs, "format": fmt},
        input_name="x",
        input_shape=(1, 3, 32, 160),
        metadata={"character": "\n".join(charset), "formats": "LLDDDLL\nLLLLLLL"},
    )
    reader = PlateReader(PlateReaderConfig(model=str(model), decoder="heads"))
    assert reader.formats == ["LLDDDLL", "LLLLLLL"]
    text, _ = reader.read_crops([np.zeros((20, 80, 3), np.uint8)])[0]
    assert text[:3] == "AB8"
