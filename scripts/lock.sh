#!/usr/bin/env bash
# Refreshes requirements.lock (and requirements-robot.lock) from the requirements*.txt inputs: every
# package the development venv gets, transitive ones included, at exact versions with hashes, for
# Python 3.10 (JetPack 6 / Humble) and 3.11 in one universal file. Run it after changing an input and
# commit the inputs with the lock; scripts/setup_env.sh installs nothing else.
#
#   bash scripts/lock.sh              # keep current pins where the inputs still allow them
#   bash scripts/lock.sh --upgrade    # take the newest versions the inputs allow
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
UV="${UV:-$ROOT/.venv/bin/uv}"
[ -x "$UV" ] || UV=uv
common=(--universal --python-version 3.10 --generate-hashes --override requirements-overrides.txt
        --custom-compile-command "bash scripts/lock.sh" --quiet "$@")
"$UV" pip compile "${common[@]}" -o requirements.lock \
  requirements.txt requirements-dev.txt requirements-ros.txt requirements-rosidl.txt
# The robot's pip packages (Python 3.10 on JetPack 6; x86_64 and aarch64 alike).
"$UV" pip compile "${common[@]}" -o requirements-robot.lock requirements-robot.txt
