"""The committed sample models load, match their contracts and still meet their accuracy targets.

Accuracy runs through the runtime stages (``Detector``, ``Segmenter``) on the held-out sample set
(``sample_data`` fixture: 120 synthetic 1280x720 scenes the models never saw in training).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
DETECTOR = MODELS / "detector.onnx"
SEGMENTER = MODELS / "segmenter.onnx"


def _session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


# ----- detector -----


def test_detector_contract() -> None:
    assert DETECTOR.stat().st_size <= 5 * 2**20
    sess = _session(DETECTOR)
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    # Batch dynamic (the multi-camera pipeline's one call for N frames), the rest fixed.
    assert inp.name == "images" and inp.shape[:2] == ["batch", 3]
    h, w = inp.shape[2:]
    assert out.name == "output0" and out.shape[:2] == ["batch", 6]
    y = sess.run(None, {"images": np.full((1, 3, h, w), 114 / 255, np.float32)})[0]
    assert y.shape[2] == sum((h // s) * (w // s) for s in (8, 16, 32))
    assert (y[0, 4:] >= 0).all() and (y[0, 4:] <= 1).all()  # sigmoid scores
    assert (MODELS / "detector_labels.txt").read_text().split() == ["car", "plate"]


def test_detector_dynamic_batch_is_the_export_edit() -> None:
    """The committed model is what ``--dynamic-batch-only`` makes: the edit is idempotent and byte-stable."""
    import onnx

    from tools.train_detector import dynamic_batch

    m = onnx.load(str(DETECTOR))
    dynamic_batch(m)
    assert m.SerializeToString() == DETECTOR.read_bytes()


@pytest.mark.slow
def test_detector_map50_per_class(sample_data) -> None:
    from tools.train_detector import evaluate

    metrics = evaluate(DETECTOR, sample_data.val_coco, sample_data.images_dir)
    assert metrics["car_ap50"] >= 0.9, metrics
    assert metrics["plate_ap50"] >= 0.9, metrics


# ----- segmenter -----


@pytest.mark.parametrize(("h", "w"), [(384, 384), (352, 640), (768, 1344)])
def test_segmenter_dynamic_shapes(h: int, w: int) -> None:
    assert SEGMENTER.stat().st_size <= 5 * 2**20
    sess = _session(SEGMENTER)
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert inp.name == "input" and out.name == "logits"
    y = sess.run(None, {"input": np.zeros((1, 3, h, w), np.float32)})[0]
    assert y.shape == (1, 4, h // 4, w // 4) and y.dtype == np.float32


@pytest.mark.slow
def test_segmenter_miou(sample_data) -> None:
    from trt_perception.metrics.segmentation import confusion_matrix, iou_per_class
    from trt_perception.stages.segmenter import Segmenter, SegmenterConfig

    seg = Segmenter(
        SegmenterConfig(model=str(SEGMENTER), backend="onnxruntime", input_width=640, input_height=352)
    )
    images = json.loads(sample_data.val_coco.read_text())["images"][:60]
    cm = np.zeros((4, 4), np.int64)
    for info in images:
        bgr = cv2.imread(str(sample_data.images_dir / info["file_name"]))
        gt = cv2.imread(
            str(sample_data.masks_dir / f"{Path(info['file_name']).stem}.png"), cv2.IMREAD_UNCHANGED
        )
        cm += confusion_matrix(gt, seg(bgr).mask, 4)
    iou = iou_per_class(cm)
    assert iou.mean() >= 0.85, dict(zip(["background", "road", "lane_marking", "vehicle"], iou.round(3)))
