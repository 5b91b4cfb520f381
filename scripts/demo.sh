#!/usr/bin/env bash
# Sets everything up, then runs the main job on the examples/ tree.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
virtsync validate examples/
