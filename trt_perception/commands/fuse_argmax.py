"""``trt-perception fuse-argmax in.onnx out.onnx``: append the uint8-mask post-processing to a
segmentation ONNX (resize -> argmax -> resize nearest, or the reducemax variants); see
``trt_perception.modelops.argmax_fusion``. Build the TensorRT engine from ``out.onnx`` afterwards."""

from __future__ import annotations

import argparse

from ..modelops.fusion_config import (
    ARGMAX_IMPLS,
    MODES,
    TARGET_NAMES,
    FusionConfig,
    parse_divisor,
    parse_size,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="segmentation ONNX with logits [N, C, h, w]")
    parser.add_argument("output", help="where to write the rewritten ONNX")
    parser.add_argument("--mode", choices=MODES, default="fused-argmax", help="post-processing appended")
    parser.add_argument(
        "--output-size",
        default="input",
        help="mask size: input (network input H, W; dynamic shapes stay dynamic), logits, or HxW (e.g. 768x1344)",
    )
    parser.add_argument(
        "--divisor",
        default="2",
        help="fused modes: argmax at output size / divisor (an int, or ROWSxCOLS like 1x4)",
    )
    parser.add_argument(
        "--argmax-impl",
        choices=ARGMAX_IMPLS,
        default="op",
        help="argmax modes: ONNX ArgMax, elementwise compare chain, or the chain on class-0 difference planes",
    )
    parser.add_argument(
        "--target",
        choices=TARGET_NAMES,
        default="tensorrt",
        help="tensorrt: a graph TensorRT 8.5+/TensorRT-RTX and ONNX Runtime both run (float32 class index, "
        "uint8 only at the output); cpu: ONNX Runtime only, uint8 index (faster there, TensorRT rejects it)",
    )
    parser.add_argument(
        "--logits", default=None, help="logits output name (default: 'logits' or the only one)"
    )
    parser.add_argument("--input-name", default=None, help="image input name (default: the only input)")
    parser.add_argument("--keep-logits", action="store_true", help="keep the logits as a second output")


def run(args: argparse.Namespace) -> int:
    # lazy: imports onnx (~1.4 s), and the CLI loads every command to build its parser
    from ..modelops.argmax_fusion import fuse_argmax_file

    try:
        cfg = FusionConfig(
            mode=args.mode,
            output_size=parse_size(args.output_size),
            divisor=parse_divisor(args.divisor),
            target=args.target,
            logits=args.logits,
            image_input=args.input_name,
            keep_logits=args.keep_logits,
            argmax_impl=args.argmax_impl,
        )
        out = fuse_argmax_file(args.input, args.output, cfg)
    except (ValueError, OSError) as exc:
        print(f"fuse-argmax: {exc}")
        return 2
    print(f"wrote {out}: {cfg.mode} for {cfg.target}, mask 'mask' uint8 [N, H, W] at {args.output_size}")
    return 0
