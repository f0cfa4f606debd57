"""The plate generator is deterministic and follows its format (the scenes and the reader training use it)."""

from __future__ import annotations

import numpy as np
import pytest

from tools.synth.plates import CHARSET, DIGITS, LETTERS, random_plate_text, reader_crop, render_plate


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
