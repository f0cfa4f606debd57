"""sensor_msgs/Image <-> numpy: every encoding, row padding, byte order, views, errors, round trips."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sensor_msgs.msg import Image

from trt_perception.io.images import (
    COLOR_ENCODINGS,
    ENCODINGS,
    ImageEncodingError,
    bgr_to_encoding,
    image_to_bgr,
    image_to_numpy,
    layout,
    numpy_to_image,
)

ISSUE_ENCODINGS = (
    "rgb8",
    "bgr8",
    "rgba8",
    "bgra8",
    "mono8",
    "mono16",
    "8UC1",
    "8UC3",
    "16UC1",
    "32FC1",
    "yuv422",
    "yuv422_yuy2",
)


def _random(encoding: str, h: int = 7, w: int = 10, seed: int = 0) -> np.ndarray:
    dtype, channels = layout(encoding)
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


def _padded(arr: np.ndarray, encoding: str, pad: int, bigendian: bool = False) -> Image:
    """An Image whose rows carry ``pad`` extra bytes, built by hand (not by the code under test)."""
    h, w = arr.shape[:2]
    raw = arr.astype(arr.dtype.newbyteorder(">" if bigendian else "<")).reshape(h, -1).view(np.uint8)
    rows = np.zeros((h, raw.shape[1] + pad), np.uint8)
    rows[:, : raw.shape[1]] = raw
    return Image(
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=int(bigendian),
        step=rows.shape[1],
        data=rows.tobytes(),
    )


def test_every_issue_encoding_is_supported() -> None:
    assert set(ISSUE_ENCODINGS) <= set(ENCODINGS)


@pytest.mark.parametrize("encoding", ISSUE_ENCODINGS)
def test_round_trip_every_encoding(encoding: str) -> None:
    arr = _random(encoding)
    msg = numpy_to_image(arr, encoding)
    assert isinstance(msg, Image)
    dtype, channels = layout(encoding)
    assert (msg.height, msg.width, msg.encoding) == (7, 10, encoding)
    assert msg.step == 10 * channels * dtype.itemsize
    assert len(msg.data) == msg.step * msg.height
    back = image_to_numpy(msg)
    assert back.dtype == dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("encoding", ISSUE_ENCODINGS)
@pytest.mark.parametrize("pad", [1, 3, 64])
def test_row_padding_is_honoured(encoding: str, pad: int) -> None:
    arr = _random(encoding, seed=pad)
    back = image_to_numpy(_padded(arr, encoding, pad))
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "32FC1"])
def test_big_endian_data_is_swapped(encoding: str) -> None:
    arr = _random(encoding)
    msg = _padded(arr, encoding, pad=0, bigendian=True)
    back = image_to_numpy(msg)
    np.testing.assert_array_equal(back, arr)
    assert back.dtype.isnative


def test_bgr8_is_a_zero_copy_view_even_with_padding() -> None:
    arr = _random("bgr8", 20, 30)
    for msg in (numpy_to_image(arr, "bgr8"), _padded(arr, "bgr8", pad=8)):
        view = image_to_numpy(msg)
        assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))
        assert not view.flags.writeable  # the message's buffer is not ours to change
        assert image_to_bgr(msg).base is not None  # bgr8 -> BGR: still the view


def test_multibyte_native_order_is_a_view() -> None:
    for encoding in ("mono16", "32FC1"):
        msg = numpy_to_image(_random(encoding), encoding)
        assert np.shares_memory(image_to_numpy(msg), np.frombuffer(msg.data, np.uint8))


def test_numpy_to_image_takes_one_copy_and_accepts_non_contiguous() -> None:
    big = _random("bgr8", 40, 60)
    crop = big[5:25, 10:50]  # not contiguous
    msg = numpy_to_image(crop, "bgr8")
    np.testing.assert_array_equal(image_to_numpy(msg), crop)
    assert not np.shares_memory(np.frombuffer(msg.data, np.uint8), big)


def test_numpy_to_image_fills_a_given_message_and_header() -> None:
    from std_msgs.msg import Header

    msg = Image()
    header = Header(frame_id="cam")
    out = numpy_to_image(_random("mono8"), "mono8", msg=msg, header=header)
    assert out is msg and msg.header.frame_id == "cam"


def test_a_reused_message_is_refilled_in_place() -> None:
    """camera_bridge refills one Image per frame: the same buffer while the size holds, a new one when
    it changes (a live ``encoding`` change), and the pixels of the newest frame either way."""
    msg = Image()
    first, second = _random("bgr8", 30, 40), _random("bgr8", 30, 40)
    numpy_to_image(first, "bgr8", msg)
    buffer = msg._data
    numpy_to_image(second, "bgr8", msg)
    assert msg._data is buffer
    np.testing.assert_array_equal(image_to_numpy(msg), second)
    grey = _random("mono8", 30, 40)
    numpy_to_image(grey, "mono8", msg)
    assert msg._data is not buffer and msg.step == 40
    np.testing.assert_array_equal(image_to_numpy(msg), grey)


def test_rosbags_like_message_with_numpy_data() -> None:
    """Messages read by rosbags carry data as a numpy uint8 array."""

    class BagImage:
        pass

    arr = _random("rgb8")
    msg = numpy_to_image(arr, "rgb8", msg=BagImage())
    assert isinstance(msg.data, np.ndarray)
    np.testing.assert_array_equal(image_to_numpy(msg), arr)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"step": 20}, "step smaller"),
        ({"data": b"\0" * 100}, "data shorter"),
        ({"height": 0}, "empty image"),
        ({"encoding": "bayer_rggb8"}, "unsupported image encoding 'bayer_rggb8'"),
    ],
)
def test_mismatch_errors_name_every_field(change: dict, expected: str) -> None:
    msg = numpy_to_image(_random("bgr8"), "bgr8")
    for k, v in change.items():
        setattr(msg, k, v)
    with pytest.raises(ImageEncodingError, match=expected) as err:
        image_to_numpy(msg)
    text = str(err.value)
    if "unsupported" not in text:
        for field in ("encoding=bgr8", "width=10", f"height={msg.height}", f"step={msg.step}", "data="):
            assert field in text


def test_numpy_to_image_rejects_wrong_shape_and_dtype() -> None:
    with pytest.raises(ImageEncodingError, match="shape"):
        numpy_to_image(np.zeros((4, 4), np.uint8), "bgr8")
    with pytest.raises(ImageEncodingError, match="dtype"):
        numpy_to_image(np.zeros((4, 4), np.uint16), "mono8")
    with pytest.raises(ImageEncodingError, match="unsupported"):
        numpy_to_image(np.zeros((4, 4), np.uint8), "nope")


@pytest.mark.parametrize("encoding", COLOR_ENCODINGS)
def test_image_to_bgr_matches_opencv(encoding: str) -> None:
    bgr = _random("bgr8", 8, 12)
    pixels = bgr_to_encoding(bgr, encoding)
    out = image_to_bgr(numpy_to_image(pixels, encoding))
    assert out.shape == (8, 12, 3) and out.dtype == np.uint8
    if encoding in ("bgr8", "8UC3", "rgb8", "rgba8", "bgra8"):
        np.testing.assert_array_equal(out, bgr)
    elif encoding in ("mono8", "8UC1"):
        np.testing.assert_array_equal(
            out, cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        )
    else:  # 4:2:2 halves the colour resolution: close, not equal
        assert np.abs(out.astype(int) - bgr.astype(int)).mean() < 40


def test_yuv422_byte_order_uyvy_vs_yuyv() -> None:
    gray = np.full((2, 4, 3), 200, np.uint8)  # grey: chroma is 128, luma is 200
    uyvy = bgr_to_encoding(gray, "yuv422").reshape(-1)
    yuyv = bgr_to_encoding(gray, "yuv422_yuy2").reshape(-1)
    assert list(uyvy[:4]) == [128, 200, 128, 200]
    assert list(yuyv[:4]) == [200, 128, 200, 128]


def test_image_to_bgr_rejects_non_colour() -> None:
    with pytest.raises(ImageEncodingError, match="32FC1"):
        image_to_bgr(numpy_to_image(_random("32FC1"), "32FC1"))


@st.composite
def _images(draw: st.DrawFn) -> tuple[str, np.ndarray, int]:
    encoding = draw(st.sampled_from(ISSUE_ENCODINGS))
    dtype, channels = layout(encoding)
    h = draw(st.integers(1, 9))
    w = draw(st.integers(1, 9)) * (2 if encoding.startswith("yuv") else 1)
    shape = (h, w) if channels == 1 else (h, w, channels)
    elements = st.floats(-1e6, 1e6, width=32) if dtype.kind == "f" else None
    arr = draw(arrays(dtype, shape, elements=elements))
    pad = draw(st.integers(0, 17))
    return encoding, arr, pad


@settings(max_examples=200, deadline=None)
@given(_images(), st.booleans())
def test_property_round_trip(case: tuple[str, np.ndarray, int], bigendian: bool) -> None:
    encoding, arr, pad = case
    np.testing.assert_array_equal(image_to_numpy(numpy_to_image(arr, encoding)), arr)
    np.testing.assert_array_equal(image_to_numpy(_padded(arr, encoding, pad, bigendian)), arr)


def _ros2_cv_bridge() -> object | None:
    """ROS 2's cv_bridge (registered in the ament index), never the PyPI ``cv-bridge`` (ROS 1 code)."""
    if importlib.util.find_spec("cv_bridge") is None:
        return None
    try:
        from ament_index_python.packages import get_package_share_directory

        get_package_share_directory("cv_bridge")
    except Exception:
        return None
    import cv_bridge

    return cv_bridge


_CV_BRIDGE = _ros2_cv_bridge()


@pytest.mark.skipif(_CV_BRIDGE is None, reason="ROS 2 cv_bridge not installed (it is on a robot)")
@pytest.mark.parametrize("encoding", ISSUE_ENCODINGS)
def test_same_results_as_ros2_cv_bridge(encoding: str) -> None:
    bridge = _CV_BRIDGE.CvBridge()  # type: ignore[union-attr]
    arr = _random(encoding, 6, 8)
    try:
        theirs = bridge.cv2_to_imgmsg(arr, encoding=encoding)
    except _CV_BRIDGE.CvBridgeError as exc:  # type: ignore[union-attr]
        pytest.skip(f"this cv_bridge does not know {encoding}: {exc}")
    ours = numpy_to_image(arr, encoding)
    assert (ours.height, ours.width, ours.step, ours.encoding) == (
        theirs.height,
        theirs.width,
        theirs.step,
        theirs.encoding,
    )
    assert bytes(ours.data) == bytes(theirs.data)
    np.testing.assert_array_equal(image_to_numpy(theirs), bridge.imgmsg_to_cv2(theirs))
    for bigendian in (False, True):
        padded = _padded(arr, encoding, pad=5, bigendian=bigendian)
        np.testing.assert_array_equal(image_to_numpy(padded), bridge.imgmsg_to_cv2(padded))


def test_encoding_error_does_not_name_one_node() -> None:
    # Every image node (detector, segmentation, pilot...) raises this; the node's log line and its
    # /diagnostics status name carry who it is.
    from sensor_msgs.msg import Image

    from trt_perception.io.images import ImageEncodingError, image_to_bgr

    msg = Image(encoding="32FC1", height=1, width=1, step=4, data=bytes(4))
    with pytest.raises(ImageEncodingError, match="32FC1") as err:
        image_to_bgr(msg)
    assert "detector" not in str(err.value)
