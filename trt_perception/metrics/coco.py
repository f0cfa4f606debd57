"""COCO detection metrics through pycocotools: the 12 standard numbers, per-class AP and PR curves.

A thin wrapper, on purpose: the numbers must be exactly what ``pycocotools`` prints, so anyone can
check them against their own scripts. What it adds is the plumbing users get wrong: building the
ground truth from a dict (no temp file), a confidence floor for the detections (1e-2 by default: a
deployment threshold such as 0.3 drops low-confidence true positives and lowers mAP), an empty
detection list (``loadRes`` crashes on one), and silencing pycocotools' prints.

Beside COCO's AP50 (101 recall points) it reports VOC-style mAP@0.5 (``AP50_VOC``: VOC2010+ all-point
interpolation, the number seeds 003/004 quote) from the same matches: COCOeval's own per-image
matches at IoU 0.5 (``evalImgs``), not a second matcher. Those differ from the VOC devkit's in
details: IoU >= 0.5 rather than > 0.5, a detection whose best ground truth is taken may match the
next-best free one (VOC counts it false), at most 100 detections per image, and crowd/area-ignored
ground truth stands in for VOC's "difficult" flag (the package's datasets have neither).
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Default confidence floor for mAP (see the mAP-verification notes: 1e-2 or lower).
DEFAULT_CONF_THRESHOLD = 1e-2

#: The 12 numbers of ``COCOeval.summarize()`` for bounding boxes, in its order.
COCO_STAT_NAMES: tuple[str, ...] = (
    "AP",  # IoU=0.50:0.95 area=all maxDets=100
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
)

#: Human labels for report rows: pycocotools' own wording for its 12 numbers.
COCO_STAT_LABELS: dict[str, str] = {
    "AP": "AP @[IoU=0.50:0.95 | area=all | maxDets=100]",
    "AP50": "AP @[IoU=0.50 | area=all | maxDets=100]",
    "AP50_VOC": "mAP@0.5 (VOC all-point)",
    "AP75": "AP @[IoU=0.75 | area=all | maxDets=100]",
    "AP_small": "AP @[IoU=0.50:0.95 | area=small | maxDets=100]",
    "AP_medium": "AP @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "AP_large": "AP @[IoU=0.50:0.95 | area=large | maxDets=100]",
    "AR1": "AR @[IoU=0.50:0.95 | area=all | maxDets=1]",
    "AR10": "AR @[IoU=0.50:0.95 | area=all | maxDets=10]",
    "AR100": "AR @[IoU=0.50:0.95 | area=all | maxDets=100]",
    "AR_small": "AR @[IoU=0.50:0.95 | area=small | maxDets=100]",
    "AR_medium": "AR @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "AR_large": "AR @[IoU=0.50:0.95 | area=large | maxDets=100]",
}


@dataclass
class CocoMetrics:
    """Result of one evaluation. ``stats`` as pycocotools gives it (-1 where no ground truth)."""

    stats: np.ndarray  # [12]
    per_class_ap: dict[str, float]  # category name -> AP@[.5:.95]
    per_class_ap50: dict[str, float]
    recall_thresholds: np.ndarray  # [101]
    pr_curves: dict[str, np.ndarray]  # category name -> precision at IoU=.5, area all, 100 dets [101]
    num_detections: int
    #: VOC-style mAP@0.5 (all-point interpolation) over the classes with ground truth; -1 without any
    voc_map50: float

    @property
    def map(self) -> float:
        """COCO mAP@[.5:.95]."""
        return float(self.stats[0])

    @property
    def map50(self) -> float:
        """mAP@0.5 (the VOC-style IoU threshold, COCO's 101-point interpolation)."""
        return float(self.stats[1])

    def as_dict(self) -> dict[str, float]:
        """The 12 COCO numbers with ``AP50_VOC`` right after COCO's AP50."""
        numbers = {name: float(v) for name, v in zip(COCO_STAT_NAMES, self.stats)}
        keys = [*COCO_STAT_NAMES[:2], "AP50_VOC", *COCO_STAT_NAMES[2:]]
        return {k: self.voc_map50 if k == "AP50_VOC" else numbers[k] for k in keys}


def coco_from_dict(dataset: Mapping[str, Any]) -> Any:
    """A ``pycocotools.coco.COCO`` built from an in-memory dict, quietly.

    Annotations missing ``area``/``iscrowd``/``id`` (ground truth made from a bag topic) get the
    values pycocotools assumes for boxes: area = w*h, not crowd, ids 1..N.
    """
    from pycocotools.coco import COCO

    data = copy.deepcopy(dict(dataset))
    data.setdefault("images", [])
    data.setdefault("categories", [])
    anns = data.setdefault("annotations", [])
    for i, ann in enumerate(anns, start=1):
        ann.setdefault("id", i)
        ann.setdefault("iscrowd", 0)
        if "area" not in ann and "bbox" in ann:
            ann["area"] = float(ann["bbox"][2]) * float(ann["bbox"][3])
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def filter_detections(results: Iterable[Mapping[str, Any]], conf_threshold: float) -> list[dict[str, Any]]:
    """COCO result dicts with ``score >= conf_threshold``."""
    return [dict(r) for r in results if float(r["score"]) >= conf_threshold]


def evaluate_coco(
    ground_truth: Mapping[str, Any] | Any,
    results: Sequence[Mapping[str, Any]],
    conf_threshold: float = DEFAULT_CONF_THRESHOLD,
    image_ids: Sequence[int] | None = None,
) -> CocoMetrics:
    """Run ``COCOeval(iouType="bbox")`` on COCO-format ``results`` (``image_id``, ``category_id``,
    ``bbox`` [x, y, w, h], ``score``) against ``ground_truth`` (a dict or a ``COCO``).

    ``image_ids`` restricts the evaluation (e.g. the frames a truncated bag delivered).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = ground_truth if isinstance(ground_truth, COCO) else coco_from_dict(ground_truth)
    dets = filter_detections(results, conf_threshold)
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        if dets:
            dt = gt.loadRes(dets)
        else:  # loadRes indexes anns[0]; an empty result set is a valid (zero) answer
            dt = coco_from_dict({"images": gt.dataset["images"], "categories": gt.dataset["categories"]})
        ev = COCOeval(gt, dt, iouType="bbox")
        if image_ids is not None:
            ev.params.imgIds = sorted(int(i) for i in image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return _collect(gt, ev, len(dets))


def _collect(gt: Any, ev: Any, num_detections: int) -> CocoMetrics:
    precision = ev.eval["precision"]  # [T iou, R recall, K class, A area, M maxDets]
    names = {c["id"]: c["name"] for c in gt.dataset["categories"]}
    per_ap: dict[str, float] = {}
    per_ap50: dict[str, float] = {}
    curves: dict[str, np.ndarray] = {}
    for k, cat_id in enumerate(ev.params.catIds):
        name = names.get(cat_id, str(cat_id))
        p_all = precision[:, :, k, 0, -1]
        p50 = precision[0, :, k, 0, -1]
        per_ap[name] = float(p_all[p_all > -1].mean()) if (p_all > -1).any() else -1.0
        per_ap50[name] = float(p50[p50 > -1].mean()) if (p50 > -1).any() else -1.0
        curves[name] = np.where(p50 > -1, p50, np.nan)
    voc = [ap for ap in voc_ap50_per_class(ev).values() if ap >= 0]
    return CocoMetrics(
        stats=np.asarray(ev.stats, dtype=np.float64),
        per_class_ap=per_ap,
        per_class_ap50=per_ap50,
        recall_thresholds=np.asarray(ev.params.recThrs, dtype=np.float64),
        pr_curves=curves,
        num_detections=num_detections,
        voc_map50=float(np.mean(voc)) if voc else -1.0,
    )


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2010+ all-point AP: the area under the precision envelope (each precision raised to the
    best one at any higher recall), summed over the recall steps. ``recall``/``precision``: the
    cumulative values down the score-sorted detections."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.maximum.accumulate(np.concatenate([[0.0], precision, [0.0]])[::-1])[::-1]
    step = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))


def voc_ap50_per_class(ev: Any) -> dict[int, float]:
    """Category id -> VOC all-point AP at IoU 0.5 from an evaluated ``COCOeval``'s matches (its
    ``evalImgs`` at IoU 0.5, area "all", ``maxDets[-1]``); -1 for a category without ground truth.
    Detections matched to ignored ground truth count neither way, as in COCOeval."""
    p = ev.params
    t50 = int(np.flatnonzero(np.isclose(p.iouThrs, 0.5))[0])
    n_img, n_area = len(p.imgIds), len(p.areaRng)
    out: dict[int, float] = {}
    for k, cat in enumerate(p.catIds):
        # evalImgs is ordered category x area range x image; area range 0 is "all"
        runs = [e for e in ev.evalImgs[k * n_area * n_img : k * n_area * n_img + n_img] if e is not None]
        positives = sum(int(np.count_nonzero(e["gtIgnore"] == 0)) for e in runs)
        if not positives:
            out[cat] = -1.0
            continue
        scores = np.concatenate([e["dtScores"] for e in runs])
        order = np.argsort(-scores, kind="mergesort")  # pycocotools' own tie order
        matched = np.concatenate([e["dtMatches"][t50] for e in runs])[order] > 0
        counted = ~np.concatenate([e["dtIgnore"][t50] for e in runs])[order].astype(bool)
        tp = np.cumsum(matched[counted])
        fp = np.cumsum(~matched[counted])
        out[cat] = voc_ap(tp / positives, tp / np.maximum(tp + fp, 1)) if tp.size else 0.0
    return out


def detections_to_coco(
    image_id: int,
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    category_ids: np.ndarray,
) -> list[dict[str, Any]]:
    """COCO result dicts from xyxy boxes (vectorised conversion, one dict per box)."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).round(3).tolist()
    return [
        {"image_id": int(image_id), "category_id": int(c), "bbox": b, "score": float(s)}
        for b, s, c in zip(xywh, np.asarray(scores).tolist(), np.asarray(category_ids).tolist())
    ]
