#!/usr/bin/env bash
# A larger, randomized YAML-text fuzz run, by hand (the suite runs a small derandomized
# one): scripts/fuzz.sh [EXAMPLES] — default 20000. Prints how many inputs reached the
# planner; a failure prints the shrunk input that crashed. See docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export VIRTSYNC_FUZZ_RANDOM=1 VIRTSYNC_FUZZ_TEXT_EXAMPLES="${1:-20000}"
exec python -m pytest -q -s -p no:cacheprovider --benchmark-disable \
  tests/fuzz/test_fuzz_yaml_text.py
