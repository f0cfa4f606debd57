"""What the sample-model trainers share: their common command-line options and the train-then-evaluate flow."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """--threads, --device, --workers, --state, --eval-only, --no-eval, --data."""
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=1, help="processes rendering the training set")
    p.add_argument("--state", type=Path, help="start from these weights (with --epochs 0: just export)")
    p.add_argument("--eval-only", action="store_true")
    p.add_argument("--no-eval", action="store_true")
    p.add_argument("--data", type=Path, default=ROOT / "data")


def train_then_evaluate(
    args: argparse.Namespace,
    train: Callable[[argparse.Namespace], Any],
    evaluate: Callable[[Path], dict[str, float]],
) -> int:
    """Train (unless --eval-only), then print ``evaluate(validation set folder)`` as JSON (unless --no-eval)."""
    if not args.eval_only:
        train(args)
    if args.no_eval:
        return 0
    # Lazy: make_samples pulls in the scene renderer, needed only to evaluate.
    from tools.make_samples import val_set

    print(json.dumps(evaluate(val_set(args.data)), indent=1))
    return 0
