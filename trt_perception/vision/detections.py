"""The detection result every stage, node and metric shares: boxes in source pixels, scores, classes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Detections:
    """``boxes`` float32 [N, 4] xyxy in source-image pixels, ``scores`` float32 [N], ``class_ids``
    int32 [N]; ``labels`` is the model's label list (index = class id), shared, not per detection."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        self.class_ids = np.asarray(self.class_ids, np.int32).reshape(-1)
        if not len(self.boxes) == len(self.scores) == len(self.class_ids):
            raise ValueError(
                f"detections disagree in length: boxes {len(self.boxes)}, scores {len(self.scores)}, "
                f"class_ids {len(self.class_ids)}"
            )

    @classmethod
    def empty(cls, labels: Sequence[str] = ()) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32), list(labels))

    def __len__(self) -> int:
        return len(self.scores)

    def label(self, i: int) -> str:
        """Label of detection ``i``: the name from ``labels``, else the class id as text."""
        return label_of(int(self.class_ids[i]), self.labels)

    def names(self) -> list[str]:
        return [self.label(i) for i in range(len(self))]

    def select(self, index: np.ndarray) -> Detections:
        """A subset by boolean mask or index array (labels shared)."""
        return Detections(self.boxes[index], self.scores[index], self.class_ids[index], self.labels)

    def of_class(self, name_or_id: str | int) -> Detections:
        return self.select(self.class_ids == class_id(name_or_id, self.labels))


def label_of(class_id: int, labels: Sequence[str]) -> str:
    return labels[class_id] if 0 <= class_id < len(labels) else str(class_id)


def class_id(name_or_id: str | int, labels: Sequence[str]) -> int:
    """A class given by label or by number (``"plate"``, ``1``, ``"1"``) -> its id."""
    if isinstance(name_or_id, (int, np.integer)):
        return int(name_or_id)
    if name_or_id in labels:
        return list(labels).index(name_or_id)
    if name_or_id.strip().lstrip("-").isdigit():
        return int(name_or_id)
    raise ValueError(f"unknown class '{name_or_id}'; labels are {list(labels)}")


def load_labels(path: str | Path) -> list[str]:
    """One label per line (line N = class id N); blank trailing lines ignored."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labels file not found: {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.strip() for line in lines]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes ``a`` [N, 4] and ``b`` [M, 4] -> [N, M]."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)
