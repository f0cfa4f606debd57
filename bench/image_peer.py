"""A bare rclpy image publisher or subscriber in its own process, for transport measurements.

    python -m bench.image_peer pub --width 1280 --height 720 --rate 30 --count 200
    python -m bench.image_peer sub --count 200 --out result.json

The Fast DDS configuration comes from the environment (``FASTDDS_DEFAULT_PROFILES_FILE``...), so the
same script measures the shipped profile, Fast DDS defaults, and mixes of the two. The publisher
stamps each frame with ``time.time_ns()`` and its number in ``frame_id``; the subscriber writes the
numbers it received and each frame's latency (receive minus stamp) as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from trt_perception.io.images import numpy_to_image
from trt_perception.io.stamps import set_time, stamp_ns


def _qos(reliability: str, depth: int) -> QoSProfile:
    rel = ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(reliability=rel, history=HistoryPolicy.KEEP_LAST, depth=depth)


def publish(args: argparse.Namespace) -> int:
    rclpy.init()
    node = rclpy.create_node("image_peer_pub")
    pub = node.create_publisher(Image, args.topic, _qos(args.reliability, args.depth))
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (args.height, args.width, 3), dtype=np.uint8)
    deadline = time.monotonic() + args.wait
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(args.settle)  # discovery of the reverse direction finishes a little later
    period = 1.0 / args.rate
    next_t = time.monotonic()
    for i in range(args.count):
        msg = numpy_to_image(frame, "bgr8")
        msg.header.frame_id = str(i)
        stamp = time.time_ns()
        set_time(msg.header.stamp, stamp)
        pub.publish(msg)
        next_t += period
        time.sleep(max(0.0, next_t - time.monotonic()))
    time.sleep(args.linger)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def subscribe(args: argparse.Namespace) -> int:
    rclpy.init()
    node = rclpy.create_node("image_peer_sub")
    ids: list[int] = []
    latency_ms: list[float] = []
    stamps_ns: list[int] = []
    signatures: list[str] = []

    def on_image(msg: Image) -> None:
        now = time.time_ns()
        stamp = stamp_ns(msg.header)
        if not ids and args.ready:
            Path(args.ready).touch()
        ids.append(int(msg.header.frame_id) if msg.header.frame_id.isdigit() else -1)
        latency_ms.append((now - stamp) * 1e-6)
        stamps_ns.append(stamp)
        signatures.append(bytes(msg.data[:8]).hex())  # tells frames of a known set apart

    node.create_subscription(Image, args.topic, on_image, _qos(args.reliability, args.depth))
    deadline = time.monotonic() + args.timeout
    last, seen = time.monotonic(), 0
    while len(ids) < args.count and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        if len(ids) != seen:
            last, seen = time.monotonic(), len(ids)
        elif seen and time.monotonic() - last > args.idle:
            break
    result = {
        "received": len(ids),
        "ids": ids,
        "latency_ms": latency_ms,
        "stamps_ns": stamps_ns,
        "signatures": signatures,
    }
    Path(args.out).write_text(json.dumps(result))
    node.destroy_node()
    rclpy.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("role", choices=("pub", "sub"))
    p.add_argument("--topic", default="camera/image_raw")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--rate", type=float, default=30.0)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--reliability", choices=("best_effort", "reliable"), default="best_effort")
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--wait", type=float, default=10.0, help="pub: seconds to wait for a subscriber")
    p.add_argument("--settle", type=float, default=0.5, help="pub: seconds after matching before sending")
    p.add_argument("--linger", type=float, default=0.5, help="pub: seconds to stay after the last frame")
    p.add_argument("--timeout", type=float, default=30.0, help="sub: overall limit in seconds")
    p.add_argument("--idle", type=float, default=2.0, help="sub: stop this long after the last frame")
    p.add_argument("--out", default="image_peer.json", help="sub: result file")
    p.add_argument("--ready", default="", help="sub: file touched when the first frame arrives")
    args = p.parse_args(argv)
    return publish(args) if args.role == "pub" else subscribe(args)


if __name__ == "__main__":
    raise SystemExit(main())
