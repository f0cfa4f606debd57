"""Segmenter stage on the sample segmenter (or the stand-in): mIoU, fused vs cpu agreement, bad input."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import segmentation_standin as standin
from conftest import MODELS

from trt_perception.inference.engine import EngineError
from trt_perception.metrics.latency import INFERENCE, POSTPROCESS, PREPROCESS, LatencyRecorder
from trt_perception.metrics.segmentation import confusion_matrix, mean_iou
from trt_perception.modelops.argmax_fusion import fuse_argmax_file
from trt_perception.modelops.fusion_config import FusionConfig
from trt_perception.stages.segmenter import Segmenter, SegmenterConfig, upsample_argmax, upsample_argmax_numpy

SAMPLE = Path(os.environ.get("TRT_PERCEPTION_SEGMENTER", MODELS / "segmenter.onnx"))


@pytest.fixture(scope="module")
def standin_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return standin.build(tmp_path_factory.mktemp("seg") / "segmenter.onnx")


def _val_frames(sample_data, limit: int = 12) -> list[tuple[np.ndarray, np.ndarray]]:  # type: ignore[no-untyped-def]
    frames = []
    for mask_path in sorted(sample_data.masks_dir.glob("*.png"))[:limit]:
        image = next(sample_data.images_dir.glob(mask_path.stem + ".*"))
        frames.append((cv2.imread(str(image)), cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)))
    return frames


def _score(seg: Segmenter, frames: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, list[np.ndarray]]:
    cm = np.zeros((4, 4), np.int64)
    masks = []
    for bgr, gt in frames:
        mask = seg(bgr).mask
        cm += confusion_matrix(gt, mask, 4)
        masks.append(mask)
    return mean_iou(cm), masks


def test_sample_segmenter_miou_and_fused_agreement(sample_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    frames = _val_frames(sample_data)
    cfg = {"input_width": 640, "input_height": 352, "output_resolution": "network"}  # the node's network size

    def score(seg: Segmenter) -> tuple[float, list[np.ndarray]]:
        cm = np.zeros((4, 4), np.int64)
        masks = []
        for bgr, gt in frames:
            mask = seg(bgr).mask
            cm += confusion_matrix(cv2.resize(gt, (640, 352), interpolation=cv2.INTER_NEAREST_EXACT), mask, 4)
            masks.append(mask)
        return mean_iou(cm), masks

    miou_cpu, cpu_masks = score(Segmenter(SegmenterConfig(str(SAMPLE), argmax="cpu", **cfg)))
    assert miou_cpu >= 0.85
    exact = Segmenter(
        SegmenterConfig(str(SAMPLE), argmax="fused", fusion_mode="argmax", cache_dir=str(tmp_path), **cfg)
    )
    _, exact_masks = score(exact)
    assert (
        np.mean([(a == b).mean() for a, b in zip(cpu_masks, exact_masks)]) > 0.9999
    )  # same math in the graph
    fused = Segmenter(SegmenterConfig(str(SAMPLE), argmax="fused", cache_dir=str(tmp_path), **cfg))
    miou_fused, fused_masks = score(fused)
    agreement = np.mean([(a == b).mean() for a, b in zip(cpu_masks, fused_masks)])
    print(
        f"sample segmenter mIoU cpu {miou_cpu:.4f} fused {miou_fused:.4f}, fused/cpu agreement {agreement:.4%}"
    )
    # Measured on data/val: 99.3-99.6 % agreement, -0.56 (768x1344) to -0.71 (640x352) mIoU points, all on
    # class borders (thin lane markings lose most): the argmax at half size, then nearest upsampling.
    assert agreement >= 0.99
    assert miou_cpu - miou_fused <= 0.012


@pytest.mark.parametrize("resolution", ["network", "input"])
def test_standin_miou_and_fused_agreement_on_synthetic_frames(
    standin_model: Path, tmp_path: Path, resolution: str
) -> None:
    frames = [standin.synthetic_frame(352, 640, seed=s) for s in range(4)]
    if resolution == "input":  # a camera size that is not the network size: the mask is resized too
        frames = [standin.synthetic_frame(360, 640, seed=s) for s in range(4)]
    cpu = Segmenter(SegmenterConfig(str(standin_model), argmax="cpu", output_resolution=resolution))
    miou_cpu, cpu_masks = _score(cpu, frames)
    assert miou_cpu >= 0.85
    for mode in ("fused-argmax", "argmax", "reducemax", "fused-reducemax"):
        cfg = SegmenterConfig(
            str(standin_model),
            argmax="fused",
            fusion_mode=mode,
            output_resolution=resolution,
            cache_dir=str(tmp_path),
        )
        miou, masks = _score(Segmenter(cfg), frames)
        agreement = np.mean([(a == b).mean() for a, b in zip(cpu_masks, masks)])
        assert abs(miou - miou_cpu) <= 0.005, mode  # at most 0.5 mIoU points
        if "fused" in mode or resolution == "input":
            assert agreement >= 0.97, (mode, agreement)  # interpolation borders
        else:
            assert agreement > 0.9999, (mode, agreement)  # the same computation: float rounding only


def test_difference_is_on_borders_only(standin_model: Path, tmp_path: Path) -> None:
    bgr, _ = standin.synthetic_frame(352, 640, seed=9)
    cpu = Segmenter(SegmenterConfig(str(standin_model), argmax="cpu"))(bgr).mask
    fused = Segmenter(SegmenterConfig(str(standin_model), argmax="fused", cache_dir=str(tmp_path)))(bgr).mask
    edges = cv2.dilate((cv2.Laplacian(cpu, cv2.CV_16S) != 0).astype(np.uint8), np.ones((9, 9), np.uint8))
    assert not ((cpu != fused) & (edges == 0)).any()


def test_resolutions_latency_and_overlay(standin_model: Path) -> None:
    rec = LatencyRecorder()
    bgr, _ = standin.synthetic_frame(250, 410, seed=1)  # not multiples of 32
    seg = Segmenter(SegmenterConfig(str(standin_model), output_resolution="network"), rec)
    res = seg(bgr, stamp_ns=7)
    assert res.network_size == (416, 256) and res.mask.shape == (256, 416) and res.stamp_ns == 7
    seg_in = Segmenter(SegmenterConfig(str(standin_model), input_width=320, input_height=192))
    res_in = seg_in(bgr)
    assert res_in.mask.shape == (250, 410) and res_in.network_size == (320, 192)
    assert {PREPROCESS, INFERENCE, POSTPROCESS} <= set(rec.stages())
    over = res.overlay(bgr, 0.5)
    assert over.shape == bgr.shape and over.dtype == np.uint8
    background = cv2.resize(res.mask, (410, 250), interpolation=cv2.INTER_NEAREST) == 0
    np.testing.assert_array_equal(over[background], bgr[background])
    assert sum(res.class_fractions().values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("c", "h", "w", "out"),
    [(4, 20, 30, (120, 80)), (19, 17, 23, (64, 48)), (1, 8, 8, (16, 16)), (5, 10, 12, (12, 10))],
)
def test_opencv_argmax_is_identical_to_numpy(c: int, h: int, w: int, out: tuple[int, int]) -> None:
    rng = np.random.default_rng(c)
    logits = rng.normal(size=(c, h, w)).astype(np.float32)
    logits[:, :2] = 0.0  # ties everywhere in two rows: the lowest class wins in both
    np.testing.assert_array_equal(upsample_argmax(logits, *out), upsample_argmax_numpy(logits, *out))


def test_upsample_argmax_matches_numpy_reference() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(5, 20, 30)).astype(np.float32)
    got = upsample_argmax(logits, 120, 80)
    want = standin.bilinear(logits, 80, 120).argmax(axis=0)
    assert (got == want).mean() > 0.999


def test_bad_inputs_and_configs(standin_model: Path, tmp_path: Path) -> None:
    seg = Segmenter(SegmenterConfig(str(standin_model)))
    with pytest.raises(ValueError, match="non-empty"):
        seg(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8 BGR"):
        seg(np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match="argmax must be one of"):
        SegmenterConfig(str(standin_model), argmax="tpu")
    with pytest.raises(ValueError, match="multiple of 32"):
        SegmenterConfig(str(standin_model), input_width=100)
    with pytest.raises(EngineError, match="not found"):
        Segmenter(SegmenterConfig(str(tmp_path / "missing.onnx"), argmax="fused"))
    with pytest.raises(EngineError, match="TensorRT backend"):
        Segmenter(SegmenterConfig(str(standin_model), argmax="gpu"))
    mask_only = fuse_argmax_file(standin_model, tmp_path / "mask_only.onnx", FusionConfig())
    with pytest.raises(EngineError, match="needs float logits"):
        Segmenter(SegmenterConfig(str(mask_only), argmax="cpu"))
    # an already fused model is used as it is, and still knows its class count
    pre = Segmenter(SegmenterConfig(str(mask_only), argmax="fused"))
    assert pre.num_classes == 4 and pre(standin.synthetic_frame(64, 64)[0]).mask.shape == (64, 64)
