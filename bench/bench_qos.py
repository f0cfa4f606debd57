"""Images from any publisher: frames the ``detector`` node answers from a 720p 30 Hz publisher, for
publisher reliability {RELIABLE, BEST_EFFORT} x transport {the shipped profile, Fast DDS defaults,
UDPv4 only}, beside what a bare BEST_EFFORT subscriber (the node's subscription before it followed its
publishers' reliability) receives in the same run; and the latency the QoS change adds (image stamp ->
detections at a listener, RELIABLE vs BEST_EFFORT publisher, same transport).

    .venv/bin/python -m bench.bench_qos            # -> bench/results/qos.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import rclpy
from vision_msgs.msg import Detection2DArray

from bench.common import machine, summary, target
from trt_perception.io.stamps import stamp_ns
from trt_perception.ros.qos import reliable_qos

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "config" / "fastdds_images.xml"
_TRANSPORT_VARS = (
    "FASTDDS_DEFAULT_PROFILES_FILE",
    "FASTRTPS_DEFAULT_PROFILES_FILE",
    "FASTDDS_BUILTIN_TRANSPORTS",
)
TRANSPORTS = {
    "profile": {"FASTDDS_DEFAULT_PROFILES_FILE": str(PROFILE)},
    "fastdds_defaults": {},
    "udpv4_only": {"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"},
}
TOPIC = "camera/image_raw"


def _env(extra: dict[str, str]) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in _TRANSPORT_VARS}, **extra}


def _peer(role: str, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.image_peer", role, "--topic", TOPIC, *args],
        cwd=ROOT, env=_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def run_case(
    node: Any, answered: dict[str, float], transport: str, reliability: str, count: int
) -> dict[str, Any]:
    """One publisher configuration: the detector's answers and a bare best-effort subscriber's count."""
    answered.clear()
    with tempfile.TemporaryDirectory() as tmp:
        bare_out = Path(tmp) / "bare.json"
        bare = _peer("sub", TRANSPORTS["profile"], "--reliability", "best_effort", "--count", str(count),
                     "--timeout", str(count / 30 + 60), "--idle", "5", "--out", str(bare_out))  # fmt: skip
        time.sleep(2.0)
        pub = _peer("pub", TRANSPORTS[transport], "--reliability", reliability, "--rate", "30", "--count",
                    str(count), "--wait", "30", "--settle", "3", "--linger", "3")  # fmt: skip
        while pub.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        bare.wait(count / 30 + 90)
        received = json.loads(bare_out.read_text())["received"] if bare_out.exists() else 0
    lat = summary(list(answered.values())) if answered else None
    return {
        "transport": transport,
        "publisher": reliability,
        "sent": count,
        "detector_answered": len(answered),
        "bare_best_effort_received": received,
        "detector_latency_ms": lat,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/qos.json")
    args = p.parse_args(argv)
    domain = str(1 + os.getpid() % 9)  # 1-9: apart from the tests' 10-99
    os.environ["ROS_DOMAIN_ID"] = domain
    os.environ.update(TRANSPORTS["profile"])
    started = machine()
    detector = subprocess.Popen(
        [str(Path(sys.executable).parent / "detector"), "--ros-args", "--params-file", str(ROOT / "config/detector.yaml")],
        cwd=ROOT, env=_env({"ROS_DOMAIN_ID": domain}), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    rclpy.init()
    node = rclpy.create_node("bench_qos")
    answered: dict[str, float] = {}

    def on_dets(msg: Detection2DArray) -> None:
        answered[msg.header.frame_id] = (time.time_ns() - stamp_ns(msg.header)) * 1e-6

    node.create_subscription(Detection2DArray, "detections", on_dets, reliable_qos(100))
    time.sleep(5.0)  # the detector loads its model
    cases = []
    try:
        for transport in TRANSPORTS:
            for reliability in ("reliable", "best_effort"):
                cases.append(run_case(node, answered, transport, reliability, args.count))
                print(json.dumps({k: v for k, v in cases[-1].items() if k != "detector_latency_ms"}))
    finally:
        detector.send_signal(2)
        detector.wait(30)
        node.destroy_node()
        rclpy.shutdown()
    by = {(c["transport"], c["publisher"]): c for c in cases}
    rel, be = (
        by[("profile", "reliable")]["detector_latency_ms"],
        by[("profile", "best_effort")]["detector_latency_ms"],
    )
    targets = [
        target(f"{c['transport']} {c['publisher']} publisher: frames answered by the detector",
               round(c["detector_answered"] / c["sent"], 3), ">=", 0.95)
        if c["publisher"] == "reliable" else
        target(f"{c['transport']} {c['publisher']} publisher: frames answered by the detector",
               round(c["detector_answered"] / c["sent"], 3), "report", None)
        for c in cases
    ]  # fmt: skip
    targets += [
        target(f"{c['transport']} {c['publisher']} publisher: received by a bare best-effort subscriber",
               round(c["bare_best_effort_received"] / c["sent"], 3), "report", None)
        for c in cases
    ]  # fmt: skip
    if rel and be:
        targets.append(
            target(
                "median latency added by a reliable subscription (profile transport), ms",
                round(rel["median_ms"] - be["median_ms"], 2),
                "report",
                None,
                shown=f"{rel['median_ms']:.1f} vs {be['median_ms']:.1f} ms",
            )
        )
    result = {"machine": started, "load_average_end": os.getloadavg(), "cases": cases, "targets": targets}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
