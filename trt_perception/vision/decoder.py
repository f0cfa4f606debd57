"""Detector output decoders: the common interface (the formats are in ``yolo.py``/``ssd.py``, the
registry by name in ``decoder_registry.py``).

A decoder is bound once to the model's output specs (``bind``), which is where a model that does not
fit the decoder fails, naming the expected and the actual tensors; ``decode`` then turns one frame's
outputs into candidate boxes in network-input pixels (xyxy) with scores and class ids.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..inference.engine import EngineError, TensorSpec, describe


class DecoderMismatchError(EngineError):
    """The model's outputs do not have the layout the chosen decoder expects."""


@dataclass
class Candidates:
    """Boxes xyxy in network-input pixels, scores, class ids; ``nms_done`` when the model ran NMS."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    nms_done: bool = False

    @classmethod
    def empty(cls, nms_done: bool = False) -> Candidates:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32), nms_done)


class Decoder(abc.ABC):
    #: Registry name (``yolov8``, ``ssd_tf``, ...).
    name: str = "abstract"
    #: What the outputs must look like, for the mismatch error.
    expects: str = ""
    #: True when the model itself already ran NMS (SSD exports, TensorRT NMS plugins).
    nms_done: bool = False

    def __init__(self) -> None:
        self.input_width = 0
        self.input_height = 0

    def bind(
        self, outputs: list[TensorSpec], input_width: int, input_height: int, num_classes: int = 0
    ) -> None:
        """Check the model's outputs fit; raise DecoderMismatchError naming expected vs actual."""
        self.input_width, self.input_height = input_width, input_height
        self._bind(outputs, num_classes)

    @abc.abstractmethod
    def _bind(self, outputs: list[TensorSpec], num_classes: int) -> None: ...

    @abc.abstractmethod
    def decode(self, outputs: Mapping[str, np.ndarray], conf_threshold: float) -> Candidates:
        """Candidates of batch item 0."""

    def mismatch(self, outputs: list[TensorSpec], why: str) -> DecoderMismatchError:
        return DecoderMismatchError(
            f"decoder '{self.name}' expects {self.expects}; the model has outputs {describe(outputs)} ({why})"
        )


def static(dim: object) -> int | None:
    """A static dimension as int, None when dynamic."""
    return dim if isinstance(dim, int) and dim >= 0 else None
