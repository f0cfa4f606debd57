#!/usr/bin/env bash
# Every benchmark in turn, each writing bench/results/<topic>.json. Run it on a quiet machine: the
# targets are ratios measured within one run, but a loaded CPU still widens their spread.
#   bash bench/run_all.sh           # all of them (about 20 minutes)
#   bash bench/run_all.sh --list    # their names (CI checks each one imports and has a main)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCHES=(transport detection engines plate_readers segmentation behavior evaluation tracking qos thesis brains multicamera)
if [ "${1:-}" = "--list" ]; then echo "${BENCHES[@]}"; exit 0; fi
bash scripts/setup_env.sh
PY="${TRT_PERCEPTION_VENV:-$ROOT/.venv}/bin/python"
[ -f data/sample_scene.mp4 ] || "$PY" -m tools.make_samples --out data
for bench in "${BENCHES[@]}"; do
  echo "== bench_$bench ($(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$PY" -m "bench.bench_$bench"
done
