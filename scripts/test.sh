#!/usr/bin/env bash
# Sets everything up, then runs the whole test suite: lint, types, layers, unit, golden,
# libvirt test-driver and real-QEMU lanes. The real lane starts its own libvirtd.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff" >&2; ruff check reconciler node tests tools bench
echo "== mypy" >&2; mypy
echo "== import-linter" >&2; lint-imports
echo "== pytest" >&2
exec pytest -q -p no:cacheprovider --benchmark-disable "$@"
