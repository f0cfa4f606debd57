"""``trt-perception``: the command-line front of the ROS-free cores.

Each subcommand lives in ``trt_perception/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; command modules import their heavy dependencies inside ``run`` so that
``trt-perception build`` never loads matplotlib and ``evaluate`` never loads TensorRT.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: subcommand -> (module under trt_perception.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "build": (
        "build",
        "build or refresh TensorRT engines from ONNX (cached by model, precision, TensorRT, GPU)",
    ),
    "compare": ("compare", "run two backends or precisions on the same inputs and compare outputs"),
    "quantize": ("quantize", "make FP16 and INT8 (Q/DQ, accuracy-aware) copies of an ONNX model"),
    "fuse-argmax": ("fuse_argmax", "append resize->argmax->resize (or reducemax) to a segmentation ONNX"),
    "evaluate": ("evaluate", "evaluate models/engines on a dataset or rosbag2 into a speed/accuracy report"),
    "behavior": ("behavior", "behavior metrics of a driving run from a rosbag2 and a reference lap"),
    "demo": ("demo", "run the perception pipeline on the sample video with a live terminal view"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trt-perception", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        _load(module).add_arguments(p)
    return parser


def _load(module: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"trt_perception.commands.{module}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(_load(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
