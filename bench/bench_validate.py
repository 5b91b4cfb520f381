"""Benchmark `virtsync validate` over 10,000 generated VM files (issue #2 targets).

Reports, in one run: the floor (PyYAML CSafeLoader parse of every file, one process),
`virtsync validate` cold (empty cache) and warm (cache hit), and each run's peak RSS.
Targets on a 2-core machine: cold ≤ 3× floor, warm ≤ 0.5 s, peak memory ≤ 400 MiB.

    .venv/bin/python bench/bench_validate.py [--count 10000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
import vmgen

VIRTSYNC = str(Path(sys.executable).parent / "virtsync")
MEASURE = """
import resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
dt = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(dt, rss, p.returncode)
"""


def floor(paths: list[Path]) -> float:
    t = time.perf_counter()
    for p in paths:
        yaml.load(p.read_bytes(), Loader=yaml.CSafeLoader)
    return time.perf_counter() - t


def run_validate(root: Path, state: Path) -> tuple[float, float, int]:
    env = dict(os.environ, VIRTSYNC_STATE_DIR=str(state))
    out = subprocess.run([sys.executable, "-c", MEASURE, VIRTSYNC, "validate", str(root)],
                         env=env, capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), int(out[1]) / 1024, int(out[2])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--keep", type=Path, help="generate into (and keep) this directory")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp) / "repo"
        paths = vmgen.generate(root, args.count) if not (root / "group-000").exists() else \
            sorted(root.rglob("*.yaml"))
        state = Path(tmp) / "state"
        floor(paths[:200])  # warm the page cache and the interpreter
        floor_s = min(floor(paths) for _ in range(2))
        cold_s, cold_rss, cold_rc = run_validate(root, state)
        warm_s, warm_rss, warm_rc = min(run_validate(root, state) for _ in range(3))
        assert cold_rc == 0 and warm_rc == 0, "the generated tree must validate clean"

    figures = {
        "files": len(paths),
        "floor_csafeloader_s": round(floor_s, 2),
        "cold_s": round(cold_s, 2),
        "cold_over_floor": round(cold_s / floor_s, 2),
        "warm_s": round(warm_s, 3),
        "peak_rss_cold_mib": round(cold_rss),
        "peak_rss_warm_mib": round(warm_rss),
    }
    for k, v in figures.items():
        print(f"{k:24} {v}")
    verdict = (cold_s <= 3 * floor_s, warm_s <= 0.5, max(cold_rss, warm_rss) <= 400)
    print("targets (cold<=3x floor, warm<=0.5s, rss<=400MiB):",
          ["met" if ok else "MISSED" for ok in verdict])
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
