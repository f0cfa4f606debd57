"""A real pretrained CTC recognizer through the package's engine and decoders: PP-OCRv4 rec.

The model ships inside the ``rapidocr-onnxruntime`` wheel: input ``x`` [N,3,48,W] (BGR,
``(x/255-0.5)/0.5``, height 48 keeping the aspect, right-padded with 0), output [N,W/8,6625] softmax;
its 6623 characters are in the ONNX metadata under ``character``; class 0 is the CTC blank and the last
class the space (PaddleOCR's ``use_space_char``). Reading rendered text exactly shows that
``load_charset``, ``prepare_text_crops`` and ``ctc_greedy_decode`` follow PaddleOCR's conventions.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import ppocr_rec_model

from tools.synth.plates import random_plate_text, render_plate
from trt_perception.inference.factory import open_engine
from trt_perception.vision.text import ctc_greedy_decode, load_charset, prepare_text_crops


def _text_crop(text: str, font: int) -> np.ndarray:
    """Black text on white with a margin, as a text detector's box would cut it."""
    scale = cv2.getFontScaleFromHeight(font, 32)
    (w, h), base = cv2.getTextSize(text, font, scale, 3)
    img = np.full((h + base + 24, w + 24, 3), 255, np.uint8)
    cv2.putText(img, text, (12, 12 + h), font, scale, (0, 0, 0), 3, cv2.LINE_AA)
    return img


def _read(engine, charset: list[str], crops: list[np.ndarray]) -> list[tuple[str, float]]:
    # Same width for the whole batch: the widest crop at height 48, rounded up to the model's stride 8.
    width = max(int(np.ceil(48 * c.shape[1] / c.shape[0])) for c in crops)
    x = prepare_text_crops(crops, 48, -(-width // 8) * 8)
    probs = engine.infer({engine.input().name: x})[engine.output().name]
    assert probs.shape[0] == len(crops) and probs.shape[1] == x.shape[3] // 8
    return ctc_greedy_decode(probs, charset)


@pytest.fixture(scope="module")
def ppocr():
    engine = open_engine(ppocr_rec_model())
    classes = engine.output().shape[2]
    assert classes == 6625
    charset = load_charset(None, engine.metadata, num_classes=classes)
    assert len(engine.metadata["character"].split("\n")) == 6623
    assert charset[0] == "" and charset[-1] == " "
    return engine, charset


def test_ppocr_reads_rendered_text_exactly(ppocr):
    engine, charset = ppocr
    rng = np.random.default_rng(1)
    texts = [random_plate_text(rng) for _ in range(8)] + ["TRT 2026", "Hello ROS"]
    fonts = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX)
    crops = [_text_crop(t, fonts[i % 2]) for i, t in enumerate(texts)]
    readings = _read(engine, charset, crops)
    assert [t for t, _ in readings] == texts  # the behaviour: every character exact, spaces included
    # Only the confidence's range: its value follows the rendering (0.89 with OpenCV 5.1 against > 0.9
    # with 5.0), so a threshold on it tests the library version, not the decoder.
    assert all(0.0 < c <= 1.0 for _, c in readings)


def test_ppocr_reads_rendered_plates(ppocr):
    """On our synthetic plates it reads the group gaps as spaces; the characters are exact."""
    engine, charset = ppocr
    rng = np.random.default_rng(1)
    texts = [random_plate_text(rng) for _ in range(8)]
    plates = [render_plate(t, rng, height_px=48) for t in texts]
    readings = _read(engine, charset, plates)
    assert [t.replace(" ", "").upper() for t, _ in readings] == texts
