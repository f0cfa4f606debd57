"""Pre-processing: fast path equals a plain numpy reference for every preset, layout and dtype;
letterbox geometry round-trips; buffers are reused (no per-frame allocation)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from trt_perception.vision.preprocess import PreprocessConfig, Preprocessor, preset


def reference(bgr: np.ndarray, cfg: PreprocessConfig, pre: Preprocessor) -> np.ndarray:
    """Canvas + float math + transpose, the obvious slow way."""
    h, w = bgr.shape[:2]
    box = pre.placement(w, h)
    nw, nh = round(w * box.scale_x), round(h * box.scale_y)
    canvas = np.full((cfg.height, cfg.width, 3), cfg.pad_value, np.float32)
    canvas[int(box.pad_y) : int(box.pad_y) + nh, int(box.pad_x) : int(box.pad_x) + nw] = cv2.resize(
        bgr, (nw, nh), interpolation=cfg.interpolation
    )
    x = canvas[:, :, ::-1] if cfg.rgb else canvas
    x = (x * cfg.scale - np.array(cfg.mean, np.float32)) / np.array(cfg.std, np.float32)
    return x.transpose(2, 0, 1) if cfg.layout == "NCHW" else x


@pytest.mark.parametrize("name", ["yolo", "yolox", "ssd_tf", "imagenet", "pilotnet"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_matches_reference(name: str, layout: str, dtype: str) -> None:
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (300, 500, 3), np.uint8)
    cfg = preset(name, layout=layout, dtype=dtype)
    pre = Preprocessor(cfg, batch=2)
    tensor, _ = pre(bgr, index=1)
    assert tensor.shape == cfg.shape(2) and tensor.dtype == np.dtype(dtype)
    tol = 1e-5 if dtype == "float32" else 4e-3
    np.testing.assert_allclose(tensor[1].astype(np.float32), reference(bgr, cfg, pre), atol=tol, rtol=tol)
    assert not tensor[0].any(), "other batch slots are untouched"


@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
def test_frame_filling_the_input_matches_reference(dtype: str) -> None:
    """16:9 into a 16:9 input (no bars): the one-call normalisation over all three planes."""
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (720, 1280, 3), np.uint8)
    cfg = preset("yolo", width=512, height=288, dtype=dtype, scale=1.0 if dtype == "uint8" else 1 / 255)
    pre = Preprocessor(cfg, batch=2)
    tensor, box = pre(bgr, index=1)
    assert (box.pad_x, box.pad_y) == (0, 0) and pre._plans[(1280, 720)].whole
    tol = 4e-3 if dtype == "float16" else 1e-5
    np.testing.assert_allclose(tensor[1].astype(np.float32), reference(bgr, cfg, pre), atol=tol, rtol=tol)
    assert not tensor[0].any()


def test_presets_follow_exporters() -> None:
    yolo, ssd = preset("yolo"), preset("ssd_tf")
    assert (yolo.width, yolo.height, yolo.letterbox, yolo.pad_value, yolo.rgb) == (640, 640, True, 114, True)
    pre = Preprocessor(ssd)
    white = np.full((10, 10, 3), 255, np.uint8)
    black = np.zeros((10, 10, 3), np.uint8)
    assert np.allclose(pre(white)[0], 1.0) and np.allclose(pre(black)[0], -1.0)  # x*2/255-1
    with pytest.raises(ValueError, match="unknown preprocessing preset"):
        preset("nope")


def test_letterbox_roundtrip_and_padding_refresh() -> None:
    pre = Preprocessor(preset("yolo"))
    _, box = pre(np.full((720, 1280, 3), 200, np.uint8))
    assert (box.pad_x, box.pad_y) == (0, 140)
    t = pre.tensor[0]
    assert np.allclose(t[:, :140], 114 / 255) and np.allclose(t[:, 140:500], 200 / 255)
    net = np.array([[0, 140, 640, 500], [320, 320, 330, 330]], np.float32)
    np.testing.assert_allclose(box.to_source(net), [[0, 0, 1280, 720], [640, 360, 660, 380]], atol=1e-3)
    # A portrait frame next: the old pixels must not survive in the new padding.
    _, box2 = pre(np.full((640, 320, 3), 10, np.uint8))
    assert box2.pad_x == 160 and np.allclose(pre.tensor[0][:, 100:140, :160], 114 / 255)


def test_uint8_input_and_errors() -> None:
    pre = Preprocessor(preset("ssd_tf", dtype="uint8", scale=1.0, mean=(0, 0, 0), layout="NHWC"))
    bgr = np.zeros((30, 30, 3), np.uint8)
    bgr[..., 0] = 7  # blue
    t, _ = pre(bgr)
    assert t.dtype == np.uint8 and (t[0, :, :, 2] == 7).all()  # RGB order: blue last
    with pytest.raises(ValueError, match="uint8 input takes raw pixels"):
        preset("yolo", dtype="uint8")
    with pytest.raises(ValueError, match="empty image"):
        Preprocessor(preset("yolo"))(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8 BGR"):
        Preprocessor(preset("yolo"))(np.zeros((5, 5), np.float32))


def test_no_allocation_per_frame() -> None:
    pre = Preprocessor(preset("yolo"))
    frame = np.zeros((720, 1280, 3), np.uint8)
    t1, _ = pre(frame)
    plan = pre._plans[(1280, 720)]
    buffers = (id(plan.resized), id(plan.planes))
    t2, _ = pre(frame)
    assert t1 is t2 and pre._plans[(1280, 720)] is plan and buffers == (id(plan.resized), id(plan.planes))
