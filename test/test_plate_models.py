"""The committed plate readers load and still read >= 95 % of plates exactly (CI accuracy check).

Both readers run through the runtime stage (``PlateReader.read_crops``: PP-OCR-style pre-processing,
ONNX Runtime, CTC greedy / per-character-heads decoding) on fresh reader crops from the generator
(detector-like loose/tight boxes, perspective, 10-48 px plates, blur, noise, JPEG) and on the plates
of the sample scenes' held-out set, cut with the stage's own box padding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tools.make_samples import val_plate_crops
from tools.synth.plates import CHARSET, random_plate_text, reader_crop
from trt_perception.inference.factory import open_engine
from trt_perception.stages.plate_reader import PlateReader, PlateReaderConfig

MODELS = Path(__file__).resolve().parents[1] / "models"
READERS = {"ctc": MODELS / "plate_reader_ctc.onnx", "heads": MODELS / "plate_reader_heads.onnx"}
TARGET = 0.95


@pytest.fixture(scope="module")
def synthetic_crops() -> tuple[list[np.ndarray], list[str]]:
    rng = np.random.default_rng(20261123)  # not a training or validation seed of the trainer
    texts = [random_plate_text(rng) for _ in range(300)]
    return [reader_crop(t, rng) for t in texts], texts


def _reader(decoder: str) -> PlateReader:
    return PlateReader(PlateReaderConfig(model=str(READERS[decoder]), decoder=decoder, max_batch=32))


def _exact(readings: list[tuple[str, float]], texts: list[str]) -> float:
    return float(np.mean([r == t for (r, _), t in zip(readings, texts)]))


@pytest.mark.parametrize("decoder", ["ctc", "heads"])
def test_model_file_contract(decoder):
    path = READERS[decoder]
    assert path.stat().st_size <= 5 * 2**20
    engine = open_engine(path)
    x = engine.input()
    assert x.name == "x" and x.shape[1:] == (3, 32, 160) and x.is_dynamic  # dynamic batch
    assert engine.metadata["character"].split("\n") == list(CHARSET)
    assert (MODELS / "plate_charset.txt").read_text().split("\n")[: len(CHARSET)] == list(CHARSET)
    out = engine.outputs[0]
    assert out.name == ("probs" if decoder == "ctc" else "chars")
    assert out.shape[2] == len(CHARSET) + 1
    probs = engine.infer({"x": np.zeros((3, 3, 32, 160), np.float32)})[out.name]
    assert probs.shape[0] == 3
    np.testing.assert_allclose(probs.sum(axis=2), 1.0, atol=1e-4)


@pytest.mark.parametrize("decoder", ["ctc", "heads"])
def test_reader_accuracy_on_synthetic_crops(decoder, synthetic_crops):
    crops, texts = synthetic_crops
    readings = _reader(decoder).read_crops(crops)
    assert _exact(readings, texts) >= TARGET


@pytest.mark.parametrize("decoder", ["ctc", "heads"])
def test_reader_accuracy_on_sample_scene_plates(decoder, sample_data):
    reader = _reader(decoder)
    crops, texts = val_plate_crops(reader, sample_data.root)
    assert len(crops) >= 50
    assert _exact(reader.read_crops(crops), texts) >= TARGET
