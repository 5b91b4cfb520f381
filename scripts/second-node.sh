#!/usr/bin/env bash
# A second libvirt node on this machine (a real second libvirtd under `unshare --mount`),
# for live migration between two nodes: see tools/second_node.py and docs/nodes.md.
# Usage: scripts/second-node.sh start|stop|status [--instance X] [--json]
# Needs root and the system daemon (node A) running: python tools/libvirt_daemon.py start
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" tools/second_node.py "$@"
