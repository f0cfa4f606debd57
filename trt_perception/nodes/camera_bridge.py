"""``camera_bridge`` node: camera, video, image folder, stream or GStreamer pipeline -> ``sensor_msgs/Image``.

Thin: parameters -> ``stages.camera.CameraSource`` (capture in its own thread, reconnect with
backoff). The capture thread publishes each frame itself (keep-last publishing never blocks, and no
thread switch sits between capture and publish): one copy into the message, sensor-data QoS, stamped
with the capture time; ``CameraInfo`` from a calibration YAML goes out with the same header. Latency capture -> publish, rates, drops and the source's state
(WARN while reconnecting, ERROR when it never opened or gave up) go to ``/diagnostics``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from ..io.images import bgr_to_encoding, numpy_to_image
from ..io.stamps import set_time
from ..metrics.latency import END_TO_END
from ..ros.node_base import LIFECYCLE_PARAMETERS, ManagedPerceptionNode, run_node
from ..ros.params import Param
from ..ros.qos import sensor_qos
from ..stages.camera import OK, CameraError, CameraSource, Frame, camera_status
from ..vision.calibration import CameraCalibration, load_calibration
from ._stages import CAMERA

#: Output encodings the bridge converts BGR frames into.
OUTPUT_ENCODINGS = ("bgr8", "rgb8", "bgra8", "rgba8", "mono8", "8UC3", "8UC1", "yuv422", "yuv422_yuy2")
CONVERT, PUBLISH = "convert", "publish"

PARAMETERS: tuple[Param, ...] = (
    *CAMERA.params(),
    Param("frame_id", "camera", "header.frame_id of the images and camera info.", live=True),
    Param("encoding", "bgr8", f"Output encoding: {', '.join(OUTPUT_ENCODINGS)}.", live=True),
    Param("image_topic", "camera/image_raw", "Output sensor_msgs/Image topic."),
    Param("camera_info_topic", "camera/camera_info", "Output sensor_msgs/CameraInfo topic."),
    Param(
        "calibration_file",
        "",
        "camera_calibration_parsers YAML (cameracalibrator's output); scaled to the output size. Empty: no camera info.",
    ),
    Param(
        "wait_for_subscriber",
        False,
        "File and folder sources: start playback only once the image topic has a subscriber, so no frame "
        "is lost to discovery (offline evaluation, tests).",
    ),
    Param("stats_period", 0.0, "Seconds between one-line rate/latency logs in the terminal; 0 = off."),
    *LIFECYCLE_PARAMETERS,
)


class CameraBridge(ManagedPerceptionNode):
    """Lifecycle: configure checks the source, encoding and calibration; activate opens the device and
    publishes; deactivate stops the capture and frees the device."""

    PARAMETERS = PARAMETERS
    COMPONENT = "camera"
    source: CameraSource | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("camera_bridge", **kwargs)

    def build(self) -> None:
        p = self.params
        self.encoding = _checked_encoding(str(p["encoding"]))
        self.frame_id = str(p["frame_id"])
        self.calibration: CameraCalibration | None = (
            load_calibration(str(p["calibration_file"])) if p["calibration_file"] else None
        )
        self._info_cache: dict[tuple[int, int], CameraInfo] = {}
        self._published = 0
        # One Image refilled per frame (publish serialises before it returns): no 1 MB allocation
        # per frame in the capture thread.
        self._msg = Image()
        self._sim_time = bool(self.get_parameter("use_sim_time").value)
        self._camera_cfg = CAMERA.config(p)
        CameraSource(self._camera_cfg).check()  # a file that is not there fails here, not at activate
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Best effort, keep last 5 (sensor data); qos_overrides./<topic>.publisher.reliability: reliable
        # also matches subscribers that insist on reliable (rviz2 defaults).
        qos = sensor_qos(5)
        self.image_pub = self.publisher(Image, str(p["image_topic"]), qos)
        self.info_pub = self.publisher(CameraInfo, str(p["camera_info_topic"]), qos)

    def start(self) -> None:
        # A new source per activation: the device is opened here and freed at deactivate.
        self.source = CameraSource(self._camera_cfg, on_frame=self._on_frame, log=self.camera_log)
        self._stop.clear()
        self._thread = None
        if bool(self.params["wait_for_subscriber"]) and not self.source.cfg.is_live():
            self._thread = threading.Thread(
                target=self._start_when_subscribed, name="camera-wait", daemon=True
            )
            self._thread.start()
        else:
            self.source.start()
        self.track(self.create_timer(0.5, self._update_status))
        period = float(self.params["stats_period"])
        if period > 0:
            self.track(self.create_timer(period, self._print_stats))
        self.get_logger().info(
            f"publishing {self.source.kind} '{self.source.cfg.source}' as {self.encoding} on "
            f"{self.image_pub.topic_name} (frame_id '{self.frame_id}')"
        )

    def stop(self) -> None:
        super().stop()
        if self.source is not None:
            self._stop.set()
            self.source.stop()
            if self._thread is not None:
                self._thread.join(2.0)
            self.source = None

    def apply_parameters(self, names: set[str]) -> None:
        if "encoding" in names:
            self.encoding = _checked_encoding(str(self.params["encoding"]))
        self.frame_id = str(self.params["frame_id"])

    # -- publishing: in the capture thread (best-effort / keep-last publish never blocks), so a frame
    # goes out without a thread switch; the executor never waits on the camera.
    def _start_when_subscribed(self) -> None:
        assert self.source is not None
        while self.image_pub.get_subscription_count() < 1:
            if self._stop.wait(0.05):
                return
        self._stop.wait(0.5)  # the subscriber's side of the match completes a moment later
        try:
            self.source.start()
        except CameraError as exc:
            self.startup_error("config", str(exc))

    def _on_frame(self, frame: Frame) -> None:
        if self._stop.is_set():
            return
        if not self.processing:  # `enabled` false: the camera is read, its frames dropped and counted
            self.latency.record_dropped()
            return
        try:
            self._publish(frame.image, frame.stamp_ns)
        except Exception as exc:  # a bad frame must not end the stream
            self.warn_input("publish", f"{type(exc).__name__}: {exc}")

    def _publish(self, bgr: np.ndarray, capture_ns: int) -> None:
        t0 = time.perf_counter()
        pixels = bgr_to_encoding(bgr, self.encoding)
        header = Header(frame_id=self.frame_id)
        stamp_ns = capture_ns
        if self._sim_time:  # capture time in the node's clock (/clock)
            stamp_ns = self.get_clock().now().nanoseconds - (time.time_ns() - capture_ns)
        set_time(header.stamp, max(stamp_ns, 0))
        msg = numpy_to_image(pixels, self.encoding, self._msg, header=header)
        t1 = time.perf_counter()
        self.image_pub.publish(msg)
        if self.calibration is not None:
            info = self._camera_info(msg.width, msg.height)
            info.header = header
            self.info_pub.publish(info)
        done_ns = time.time_ns()
        self.latency.record(CONVERT, (t1 - t0) * 1e3)
        self.latency.record(PUBLISH, (time.perf_counter() - t1) * 1e3)
        self.latency.record(END_TO_END, (done_ns - capture_ns) * 1e-6)
        self._published += 1

    def _camera_info(self, width: int, height: int) -> CameraInfo:
        info = self._info_cache.get((width, height))
        if info is None:
            assert self.calibration is not None
            cal = self.calibration.scaled(width, height)
            info = CameraInfo(width=width, height=height, distortion_model=cal.distortion_model)
            info.k = cal.k.reshape(-1).tolist()
            info.d = cal.d.tolist()
            info.r = cal.r.reshape(-1).tolist()
            info.p = cal.p.reshape(-1).tolist()
            self._info_cache[(width, height)] = info
        return info

    # -- diagnostics
    def _update_status(self) -> None:
        if self.source is None:
            return
        st = self.source.state
        d = self.diagnostics
        d.set_value("source", self.source.cfg.source)
        d.set_value("source_state", st.status)
        d.set_value("frames_captured", st.captured)
        d.set_value("frames_published", self._published)
        d.set_value("frames_dropped", st.dropped)
        d.set_value("frames_skipped_by_rate_cap", st.skipped)
        d.set_value("reconnects", st.reconnects)
        d.set_value("source_fps", st.source_fps)
        status = camera_status(st)
        if status is not None and status[0] == OK:
            d.clear("source")
        elif status is not None:  # /diagnostics only: the source logged the change itself (camera_log)
            d.report("source", status[0], status[1])

    def _print_stats(self) -> None:
        s = self.latency.stats(END_TO_END)
        st = self.source.state if self.source else None
        if s is None or st is None:
            self.get_logger().info(f"no frames yet ({st.status if st else 'no source'})")
            return
        self.get_logger().info(
            f"{s.rate_hz:5.1f} Hz  capture->publish {s.mean_ms:5.2f} ms mean, {s.p95_ms:5.2f} ms p95  "
            f"published {self._published}  dropped {st.dropped}  source {st.status}"
        )


def _checked_encoding(encoding: str) -> str:
    """``encoding`` when the bridge can produce it; ValueError naming the choices otherwise."""
    if encoding not in OUTPUT_ENCODINGS:
        raise ValueError(f"unknown output encoding '{encoding}'; choose one of {', '.join(OUTPUT_ENCODINGS)}")
    bgr_to_encoding(np.zeros((2, 2, 3), np.uint8), encoding)  # fails early where a conversion is missing
    return encoding


def main(args: Any = None) -> int:
    return run_node(CameraBridge, args)


if __name__ == "__main__":
    raise SystemExit(main())
