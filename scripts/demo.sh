#!/usr/bin/env bash
# The main job: the licence-plate pipeline (camera -> detector -> plate reader) on the sample video
# with the sample models, ONNX Runtime on the CPU (TensorRT engines when given), live terminal view.
#
#   bash scripts/demo.sh                 # the sample video once, as fast as it runs, then a summary
#   bash scripts/demo.sh --realtime      # play at the video's 30 fps
#   bash scripts/demo.sh --ros           # the perception_pipeline ROS 2 node: publishes detections,
#                                        # plates and /diagnostics while showing the same view
#   bash scripts/demo.sh --save out.mp4  # also write the annotated video
#   bash scripts/demo.sh --help          # every option (other video, models, decoder, backend...)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh
VENV="${TRT_PERCEPTION_VENV:-$ROOT/.venv}"
if [ ! -f data/sample_scene.mp4 ]; then
  echo "[demo] generating the sample data under data/ (deterministic, seconds)" >&2
  "$VENV/bin/python" -m tools.make_samples --out data
fi
for model in models/detector.onnx models/plate_reader_ctc.onnx; do
  [ -f "$model" ] || { echo "[demo] missing $model (sample models are committed under models/)" >&2; exit 1; }
done
exec "$VENV/bin/python" -m trt_perception.commands.demo "$@"
