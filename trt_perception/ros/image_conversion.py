"""Moved to ``trt_perception.io.images`` (ROS-free). Kept only for ``nodes/detector.py`` and
``nodes/perception_pipeline.py`` until their owner's change lands; then this file goes."""

from ..io.images import numpy_to_image

__all__ = ["numpy_to_image"]
