"""``sensor_msgs/Image`` <-> numpy without cv_bridge.

ROS-free at import time: it reads and fills any object with the Image fields (``height``, ``width``,
``encoding``, ``is_bigendian``, ``step``, ``data``), so it serves rclpy messages, rosbags messages and
tests alike. Reading returns a zero-copy view of ``msg.data`` wherever the layout allows (row padding
included); writing costs one copy (``tobytes``), the fast path measured in ``../shared/ROS_WHEELS.md``.
"""

from __future__ import annotations

import array
import sys
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


class ImageEncodingError(ValueError):
    """An Image whose encoding, size, step and data length disagree, or an unsupported encoding."""


@dataclass(frozen=True)
class _Layout:
    dtype: np.dtype
    channels: int


_LAYOUTS: dict[str, _Layout] = {
    "rgb8": _Layout(np.dtype(np.uint8), 3),
    "bgr8": _Layout(np.dtype(np.uint8), 3),
    "rgba8": _Layout(np.dtype(np.uint8), 4),
    "bgra8": _Layout(np.dtype(np.uint8), 4),
    "mono8": _Layout(np.dtype(np.uint8), 1),
    "mono16": _Layout(np.dtype(np.uint16), 1),
    "8UC1": _Layout(np.dtype(np.uint8), 1),
    "8UC3": _Layout(np.dtype(np.uint8), 3),
    "16UC1": _Layout(np.dtype(np.uint16), 1),
    "32FC1": _Layout(np.dtype(np.float32), 1),
    # Packed 4:2:2, two bytes per pixel: UYVY ("yuv422") and YUYV ("yuv422_yuy2").
    "yuv422": _Layout(np.dtype(np.uint8), 2),
    "yuv422_yuy2": _Layout(np.dtype(np.uint8), 2),
}

#: Encodings this module reads and writes.
ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)

_TO_BGR = {
    "bgr8": None,
    "8UC3": None,
    "rgb8": cv2.COLOR_RGB2BGR,
    "rgba8": cv2.COLOR_RGBA2BGR,
    "bgra8": cv2.COLOR_BGRA2BGR,
    "mono8": cv2.COLOR_GRAY2BGR,
    "8UC1": cv2.COLOR_GRAY2BGR,
    "yuv422": cv2.COLOR_YUV2BGR_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2BGR_YUY2,
}

#: Encodings that ``image_to_bgr`` turns into 8-bit colour for the vision stages.
COLOR_ENCODINGS: tuple[str, ...] = tuple(_TO_BGR)

_HOST_BIG_ENDIAN = sys.byteorder == "big"


def layout(encoding: str) -> tuple[np.dtype, int]:
    """(dtype, channels) of ``encoding``; raises ImageEncodingError for an unknown one."""
    try:
        lay = _LAYOUTS[encoding]
    except KeyError:
        raise ImageEncodingError(
            f"unsupported image encoding '{encoding}'; supported: {', '.join(ENCODINGS)}"
        ) from None
    return lay.dtype, lay.channels


def image_to_numpy(msg: Any) -> np.ndarray:
    """The pixels of ``msg`` as ``(H, W)`` or ``(H, W, C)``, a view of ``msg.data`` where possible.

    Multi-byte pixels in the other byte order are swapped (a copy). The view is read-only when the
    message's buffer is (bytes); copy it before writing in place.
    """
    dtype, channels = layout(msg.encoding)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = w * channels * dtype.itemsize
    data = msg.data
    size = len(data)
    desc = f"encoding={msg.encoding} width={w} height={h} step={step} data={size} bytes"
    if h <= 0 or w <= 0:
        raise ImageEncodingError(f"empty image: {desc}")
    if step < row_bytes:
        raise ImageEncodingError(f"step smaller than a row of {row_bytes} bytes: {desc}")
    if size < step * (h - 1) + row_bytes:
        raise ImageEncodingError(f"data shorter than step*height = {step * h} bytes: {desc}")
    buf = _bytes_view(data)
    if step % dtype.itemsize:
        # Rows not aligned to the pixel type: compact them first (rare, but legal).
        rows = np.lib.stride_tricks.as_strided(buf, (h, row_bytes), (step, 1))
        buf, step = np.ascontiguousarray(rows).reshape(-1), row_bytes
    typed = buf[: buf.size - buf.size % dtype.itemsize].view(dtype)
    arr = np.lib.stride_tricks.as_strided(
        typed,
        shape=(h, w, channels),
        strides=(step, channels * dtype.itemsize, dtype.itemsize),
        writeable=False,
    )
    if dtype.itemsize > 1 and bool(msg.is_bigendian) != _HOST_BIG_ENDIAN:
        arr = arr.byteswap()
    return arr[:, :, 0] if channels == 1 else arr


def _bytes_view(data: Any) -> np.ndarray:
    """uint8 view of a message's data (bytes, array.array, numpy); a copy only for a plain list."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8)


def image_to_bgr(msg: Any) -> np.ndarray:
    """8-bit BGR ``(H, W, 3)`` for the vision stages: a view for bgr8, one conversion otherwise."""
    if msg.encoding not in _TO_BGR:
        raise ImageEncodingError(
            f"image encoding '{msg.encoding}' is not an 8-bit colour image, which every vision stage takes; "
            f"send one of {', '.join(COLOR_ENCODINGS)}"
        )
    arr = image_to_numpy(msg)
    code = _TO_BGR[msg.encoding]
    return arr if code is None else cv2.cvtColor(arr, code)


def numpy_to_image(arr: np.ndarray, encoding: str, msg: Any = None, header: Any = None) -> Any:
    """Fill ``msg`` (a new ``sensor_msgs/Image`` when None) from ``arr``: one copy, no padding.

    rclpy messages get an ``array.array`` filled straight from the array's buffer (0.2 ms for 1080p;
    assigning a numpy array to ``Image.data`` converts element by element and takes ~200 ms). Other
    Image-like objects (rosbags messages) get a flat uint8 numpy copy.
    """
    dtype, channels = layout(encoding)
    shape = arr.shape
    if (
        arr.ndim not in (2, 3)
        or (arr.ndim == 3 and shape[2] != channels)
        or (arr.ndim == 2 and channels != 1)
    ):
        raise ImageEncodingError(
            f"array of shape {shape} does not fit encoding '{encoding}' ({channels} channels)"
        )
    if arr.dtype != dtype:
        raise ImageEncodingError(f"array dtype {arr.dtype} does not fit encoding '{encoding}' ({dtype.name})")
    if shape[0] == 0 or shape[1] == 0:
        raise ImageEncodingError(f"empty image: array of shape {shape} for encoding '{encoding}'")
    if msg is None:  # lazy: the only ROS import here, so bags and tests read images without ROS
        from sensor_msgs.msg import Image

        msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(shape[0]), int(shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(_HOST_BIG_ENDIAN and dtype.itemsize > 1)
    msg.step = int(shape[1] * channels * dtype.itemsize)
    flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)  # a view when it already is
    data = getattr(msg, "_data", None)
    if isinstance(data, array.array) and len(data) == flat.size:
        np.frombuffer(data, np.uint8)[:] = flat  # a reused message: filled in place, no allocation
    elif isinstance(data, array.array):
        buf = array.array("B")
        buf.frombytes(flat.data)
        # The generated setter would copy the array once more; store it the way the setter does.
        msg._data = buf
    else:
        msg.data = flat.copy()
    return msg


def bgr_to_encoding(bgr: np.ndarray, encoding: str) -> np.ndarray:
    """Convert an 8-bit BGR frame into the pixel layout of ``encoding`` (for publishers)."""
    codes = {
        "bgr8": None,
        "8UC3": None,
        "rgb8": cv2.COLOR_BGR2RGB,
        "rgba8": cv2.COLOR_BGR2RGBA,
        "bgra8": cv2.COLOR_BGR2BGRA,
        "mono8": cv2.COLOR_BGR2GRAY,
        "8UC1": cv2.COLOR_BGR2GRAY,
    }
    if encoding in ("yuv422", "yuv422_yuy2"):
        return _bgr_to_yuv422(bgr, uyvy=encoding == "yuv422")
    if encoding not in codes:
        raise ImageEncodingError(
            f"cannot publish BGR frames as '{encoding}'; choose one of {', '.join(codes)}"
        )
    code = codes[encoding]
    return bgr if code is None else cv2.cvtColor(bgr, code)


def _bgr_to_yuv422(bgr: np.ndarray, uyvy: bool) -> np.ndarray:
    """Packed 4:2:2 from BGR (OpenCV has no direct BGR->UYVY/YUYV conversion)."""
    h, w = bgr.shape[:2]
    if w % 2:
        raise ImageEncodingError(f"yuv422 needs an even width, got {w}")
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)
    y = yuv[:, :, 0]
    u = yuv[:, 0::2, 1].astype(np.uint16) + yuv[:, 1::2, 1]
    v = yuv[:, 0::2, 2].astype(np.uint16) + yuv[:, 1::2, 2]
    out = np.empty((h, w, 2), np.uint8)
    luma, chroma = (1, 0) if uyvy else (0, 1)
    out[:, :, luma] = y
    out[:, 0::2, chroma] = (u // 2).astype(np.uint8)
    out[:, 1::2, chroma] = (v // 2).astype(np.uint8)
    return out
