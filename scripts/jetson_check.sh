#!/usr/bin/env bash
# One verdict for a machine with TensorRT (a Jetson): the TensorRT-marked tests, every sample engine
# in FP32/FP16/INT8 through the engine cache, the tables with TensorRT beside ONNX Runtime, and one
# report to attach to an issue (jetson_report/report.md). Where TensorRT is absent the TensorRT steps
# are skipped and the report says so and why; the rest runs.
#
#   bash scripts/jetson_check.sh               # full run (tens of minutes: builds and benchmark tables)
#   bash scripts/jetson_check.sh --quick       # smoke run (CI): few frames, no CPU benchmark tables
#   bash scripts/jetson_check.sh --out DIR     # report folder (default jetson_report)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${TRT_PERCEPTION_VENV:-$ROOT/.venv}"
exec "$VENV/bin/python" -m bench.jetson_check "$@"
