#!/usr/bin/env bash
# The test command (README.md, .ci/run): set up the environment, then lint, type-check and test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh
VENV="${TRT_PERCEPTION_VENV:-$ROOT/.venv}"
echo "== ruff (py310)"
"$VENV/bin/ruff" check trt_perception test tools bench scripts
echo "== mypy (runtime backends and model operations, TensorRT against tensorrt-stubs)"
"$VENV/bin/mypy" --config-file pyproject.toml trt_perception/inference trt_perception/modelops
echo "== pytest"
exec "$VENV/bin/python" -m pytest "$@"
