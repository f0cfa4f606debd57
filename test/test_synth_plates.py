"""The plate generator is deterministic and follows its format (the scenes and the reader training use it)."""

from __future__ import annotations

import numpy as np
import pytest

from tools.synth.plates import (
    CHARSET,
    DIGITS,
    LETTERS,
    random_plate_text,
    reader_crop,
    reader_crop_with_centres,
    render_plate,
)


def _sample(seed: int) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    text = random_plate_text(rng, "LLDDDLL")
    return (
        text,
        render_plate(text, rng, 40),
        render_plate(text, rng, 40, augment=True),
        reader_crop(text, rng),
    )


def test_same_seed_same_bytes_other_seed_differs():
    a, b, c = _sample(7), _sample(7), _sample(8)
    assert a[0] == b[0]
    for x, y in zip(a[1:], b[1:]):
        assert x.dtype == np.uint8 and x.shape == y.shape and x.tobytes() == y.tobytes()
    assert a[0] != c[0] or a[3].tobytes() != c[3].tobytes()


def test_text_follows_format():
    rng = np.random.default_rng(0)
    for fmt in ("LLDDDLL", "DDDDLLL", "LD"):
        for _ in range(50):
            t = random_plate_text(rng, fmt)
            assert len(t) == len(fmt)
            assert all((c in LETTERS) if f == "L" else (c in DIGITS) for c, f in zip(t, fmt))
    assert set(LETTERS) & set("IOQ") == set()
    assert CHARSET == DIGITS + LETTERS
    with pytest.raises(ValueError, match="'L' and 'D'"):
        random_plate_text(rng, "LLX")


def test_rendered_plate_and_reader_crop_shapes():
    rng = np.random.default_rng(3)
    plate = render_plate("AB123CD", rng, height_px=48)
    assert plate.shape[0] == 48 and plate.shape[2] == 3 and plate.shape[1] > 2 * 48
    crops = [reader_crop("AB123CD", rng, plate_height=(20, 20)) for _ in range(10)]
    assert all(c.ndim == 3 and c.shape[2] == 3 and c.dtype == np.uint8 for c in crops)
    # The crop is the plate plus or minus the box padding: roughly 20 px tall.
    assert all(14 <= c.shape[0] <= 40 for c in crops)
    with pytest.raises(ValueError):
        render_plate("", rng)


def test_reader_crop_with_centres_same_bytes_and_centres_on_the_characters():
    a, b = np.random.default_rng(11), np.random.default_rng(11)
    for _ in range(20):
        text = random_plate_text(a)
        assert random_plate_text(b) == text
        crop = reader_crop(text, a, plate_height=(24, 48))
        crop2, centres = reader_crop_with_centres(text, b, plate_height=(24, 48))
        assert crop.tobytes() == crop2.tobytes()
        assert centres.shape == (len(text), 2)
        h, w = crop.shape[:2]
        # Left to right along the plate (roll is at most 7 degrees), inside the crop's extent up to
        # the tight box (which may cut into the first or last character by 4 % of the plate).
        assert np.all(np.diff(centres[:, 0]) > 0)
        assert np.all((centres[:, 0] > -0.1 * w) & (centres[:, 0] < 1.1 * w))
        assert np.all((centres[:, 1] > 0.1 * h) & (centres[:, 1] < 0.9 * h))


def test_column_targets_are_a_ctc_path_of_the_text():
    torch = pytest.importorskip("torch")
    from tools.train_plate_reader import CLASSES, column_targets, encode_targets

    texts = ["AB123CD", "DD900PP"]
    # Character centres 8 px apart in the 160-px crop: 2 columns apart at stride 4 (the tightest case).
    centres = torch.tensor([[10.0 + 8 * i for i in range(7)]] * 2)
    cols = column_targets(centres, torch.from_numpy(encode_targets(texts)), 40)
    for row, text in zip(cols.tolist(), texts):
        # Argmax of these targets (ignored columns read as blank) decodes to the text: a blank
        # separates every two characters, so "DD" and "00" survive the collapse.
        path = [c if c > 0 else 0 for c in row]
        decoded = "".join(CLASSES[c] for i, c in enumerate(path) if c and (i == 0 or path[i - 1] != c))
        assert decoded == text
