"""Images from any publisher: frames the ``detector`` node answers from a 720p 30 Hz publisher, for
publisher reliability {RELIABLE, BEST_EFFORT} x transport {the shipped profile, Fast DDS defaults,
UDPv4 only}, beside what bare subscribers receive in the same run (one with the publisher's
reliability: what the transport delivers; one BEST_EFFORT: the node's subscription before it followed
its publishers); and the latency the QoS change adds: a reliable publisher answered at once by the
adaptive detector (RELIABLE subscription) and by one fixed to BEST_EFFORT through qos_overrides.

The detector runs with the inference defaults: a subscription depth of 1, or 2 while it follows a reliable
publisher (``RELIABLE_MIN_DEPTH``: at depth 1 Fast DDS's reliable reader loses fragmented frames), so a
frame that arrives while it is busy replaces the one waiting: on a loaded machine it answers fewer frames
than the transport delivers, and the bare subscribers' counts tell the two losses apart.

    .venv/bin/python -m bench.bench_qos            # -> bench/results/qos.json (about 4 minutes)
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
from diagnostic_msgs.msg import DiagnosticArray
from vision_msgs.msg import Detection2DArray

from bench.common import machine, summary, target
from trt_perception.io.stamps import stamp_ns
from trt_perception.ros.image_subscription import RELIABLE_MIN_DEPTH
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
_OVERRIDE = f"qos_overrides./{TOPIC}.subscription"


def _env(extra: dict[str, str]) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in _TRANSPORT_VARS}, **extra}


def _peer(role: str, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.image_peer", role, "--topic", TOPIC, *args],
        cwd=ROOT, env=_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _detector(name: str, *overrides: str) -> subprocess.Popen[bytes]:
    """A detector node (the shipped profile) answering on ``<name>/detections``."""
    args = ["--params-file", str(ROOT / "config/detector.yaml"), "-r", f"__node:={name}",
            "-r", f"detections:={name}/detections"]  # fmt: skip
    for o in overrides:
        args += ["-p", o]
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "detector"), "--ros-args", *args],
        cwd=ROOT, env=_env(TRANSPORTS["profile"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _spin_while(node: Any, proc: subprocess.Popen[bytes], then_s: float) -> None:
    while proc.poll() is None:
        rclpy.spin_once(node, timeout_sec=0.05)
    end = time.monotonic() + then_s
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)


def _bare_count(proc: subprocess.Popen[bytes], out: Path, timeout_s: float) -> int:
    proc.wait(timeout_s)
    return json.loads(out.read_text())["received"] if out.exists() else 0


def run_case(
    node: Any,
    answers: dict[str, dict[str, float]],
    load: dict[str, dict[str, str]],
    transport: str,
    reliability: str,
    count: int,
) -> dict[str, Any]:
    """One publisher configuration: each detector's answers and what the bare subscribers received."""
    for a in answers.values():
        a.clear()
    load.clear()
    wait_s = count / 30 + 90
    with tempfile.TemporaryDirectory() as tmp:
        outs = {kind: Path(tmp) / f"{kind}.json" for kind in ("best_effort", "matching")}
        sub_args = ["--count", str(count), "--timeout", str(wait_s - 30), "--idle", "5"]
        bare = {
            kind: _peer(
                "sub", TRANSPORTS["profile"], "--reliability", rel, *sub_args, "--out", str(outs[kind])
            )
            for kind, rel in (("best_effort", "best_effort"), ("matching", reliability))
        }
        time.sleep(2.0)
        pub = _peer("pub", TRANSPORTS[transport], "--reliability", reliability, "--rate", "30", "--count",
                    str(count), "--wait", "30", "--settle", "3", "--linger", "3")  # fmt: skip
        _spin_while(node, pub, 3.0)
        received = {kind: _bare_count(p, outs[kind], wait_s) for kind, p in bare.items()}
    case: dict[str, Any] = {
        "transport": transport,
        "publisher": reliability,
        "sent": count,
        "bare_matching_received": received["matching"],
        "bare_best_effort_received": received["best_effort"],
    }
    for name, a in answers.items():
        case[f"{name}_answered"] = len(a)
        case[f"{name}_latency_ms"] = summary(list(a.values())) if a else None
        # The detector's own figures at the end of the case: end_to_end above 33 ms means it cannot
        # answer every frame of a 30 Hz camera, whatever the transport delivers.
        case[f"{name}_own_latency"] = {
            k: v
            for k, v in load.get(f"/{name}: latency", {}).items()
            if k.startswith(("end_to_end.", "inference.")) and k.endswith(("mean_ms", "rate_hz"))
        }
    return case


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/qos.json")
    args = p.parse_args(argv)
    domain = str(1 + os.getpid() % 9)  # 1-9: apart from the tests' 10-99
    os.environ["ROS_DOMAIN_ID"] = domain
    os.environ.update(TRANSPORTS["profile"])
    started = machine()
    rclpy.init()
    node = rclpy.create_node("bench_qos")
    answers: dict[str, dict[str, float]] = {}
    load: dict[str, dict[str, str]] = {}

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for st in msg.status:
            load[st.name] = {kv.key: kv.value for kv in st.values}

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, reliable_qos(50))

    def listen(name: str) -> None:
        answers[name] = got = {}

        def on_dets(msg: Detection2DArray) -> None:
            got[msg.header.frame_id] = (time.time_ns() - stamp_ns(msg.header)) * 1e-6

        node.create_subscription(Detection2DArray, f"{name}/detections", on_dets, reliable_qos(100))

    detectors = [_detector("detector")]
    listen("detector")
    time.sleep(5.0)  # the detector loads its model
    cases = []
    try:
        for transport in TRANSPORTS:
            for reliability in ("reliable", "best_effort"):
                cases.append(run_case(node, answers, load, transport, reliability, args.count))
                print(
                    json.dumps({k: v for k, v in cases[-1].items() if not k.endswith("latency_ms")}),
                    flush=True,
                )
        # The QoS change's cost: the same reliable frames to the adaptive detector (RELIABLE) and to one
        # fixed to BEST_EFFORT, in one run, on the transport where best effort loses nothing.
        detectors.append(_detector("detector_fixed", f"{_OVERRIDE}.reliability:=best_effort"))
        listen("detector_fixed")
        time.sleep(5.0)
        latency_case = run_case(node, answers, load, "profile", "reliable", args.count)
        print(json.dumps({k: v for k, v in latency_case.items() if not k.endswith("latency_ms")}), flush=True)
    finally:
        for d in detectors:
            d.send_signal(2)
            d.wait(30)
        node.destroy_node()
        rclpy.shutdown()
    rows = []
    for c in cases:
        label = f"{c['transport']} {c['publisher']} publisher"
        answered = round(c["detector_answered"] / c["sent"], 3)
        rows.append(
            target(f"{label}: frames answered by the detector", answered, ">=", 0.95)
            if c["publisher"] == "reliable" and c["transport"] == "fastdds_defaults"
            else target(f"{label}: frames answered by the detector", answered, "report", None)
        )
        rows.append(target(f"{label}: received by a bare subscriber of the publisher's reliability",
                           round(c["bare_matching_received"] / c["sent"], 3), "report", None))  # fmt: skip
        rows.append(target(f"{label}: received by a bare best-effort subscriber",
                           round(c["bare_best_effort_received"] / c["sent"], 3), "report", None))  # fmt: skip
    adaptive, fixed = latency_case["detector_latency_ms"], latency_case["detector_fixed_latency_ms"]
    if adaptive and fixed:
        rows.append(
            target(
                "median latency added by the adaptive (RELIABLE) subscription vs a fixed BEST_EFFORT one, "
                "reliable publisher, profile transport, same run, ms",
                round(adaptive["median_ms"] - fixed["median_ms"], 2),
                "report",
                None,
                shown=f"{adaptive['median_ms']:.1f} vs {fixed['median_ms']:.1f} ms "
                f"({latency_case['detector_answered']} vs {latency_case['detector_fixed_answered']} answered)",
            )
        )
    result = {
        "machine": started,
        "load_average_end": os.getloadavg(),
        "detector_subscription_depth": {"best_effort": 1, "reliable": RELIABLE_MIN_DEPTH},
        "cases": cases,
        "latency_case": latency_case,
        "targets": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
