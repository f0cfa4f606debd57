"""``trt-perception behavior``: behavior metrics of a recorded drive (rosbag2) against a reference lap.

The same numbers as the ``behavior_evaluator`` node, offline: odometry, ``/clock``, the brain's
``cmd_vel`` and ``/diagnostics`` of the bag go through the node's ``RunRecorder`` (same start at the
first command); the report is printed and written as JSON, CSV and a PNG plot of the trajectory over
the reference.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..io.bags import BagReadError
from ..metrics.behavior import evaluate_run
from ..metrics.behavior_report import write_outputs
from ..metrics.behavior_run import read_run
from ..sim.circuits import load_reference


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bag",
        required=True,
        help="rosbag2 folder or .mcap/.db3 file of the drive (a ROS 1 .bag, e.g. BehaviorMetrics stats with --odom-topic /F1ROS/odom, works too)",
    )
    parser.add_argument(
        "--reference",
        required=True,
        help="reference lap: circuit name (simple | montreal), x,y CSV, or a bag of odometry (rosbag2 or a ROS 1 perfect-lap .bag)",
    )
    parser.add_argument("--reference-topic", default=None, help="odometry topic inside a reference bag")
    parser.add_argument("--odom-topic", default="/odom")
    parser.add_argument("--clock-topic", default="/clock")
    parser.add_argument("--cmd-topic", default="/cmd_vel")
    parser.add_argument("--diagnostics-topic", default="/diagnostics")
    parser.add_argument(
        "--radius", type=float, default=5.0, help="checkpoint radius in metres (BehaviorMetrics: 5)"
    )
    parser.add_argument(
        "--start-on-first-cmd",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start the experiment at the brain's first command, as the node's start_on_first_cmd",
    )
    parser.add_argument("--out", type=Path, default=Path("behavior_results"), help="output folder")
    parser.add_argument("--prefix", default="", help="output file prefix (default: behavior_<bag name>)")


def run(args: argparse.Namespace) -> int:
    # heavy (rosbags, matplotlib): loaded only when this command runs (see cli.py)

    try:
        reference = load_reference(args.reference, args.reference_topic)
        run_record = read_run(
            args.bag,
            args.odom_topic,
            args.clock_topic,
            args.cmd_topic,
            args.diagnostics_topic,
            args.start_on_first_cmd,
        )
    except (OSError, ValueError, BagReadError) as exc:
        print(f"error: {exc}")
        return 2
    if len(run_record.xy) < 2:
        print(f"error: {args.bag}: fewer than 2 odometry messages on {args.odom_topic}")
        return 2
    report = evaluate_run(run_record, reference, args.radius)
    prefix = args.prefix or f"behavior_{Path(args.bag).stem}"
    extra = {
        "circuit": Path(str(args.reference)).stem,
        "bag": str(args.bag),
        "reference": str(args.reference),
    }
    paths = write_outputs(report, run_record.xy, reference, args.out, prefix, extra, run_record.odom_stamp)
    print(json.dumps(report.as_dict(), indent=2))
    for w in report.warnings:
        print(f"warning: {w}")
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
