"""Benchmark `virtsync plan --base` (issue #3): 10,000 VM files, 1% changed between the
base commit and the pull-request head.

Reports the parse floor (PyYAML CSafeLoader over every file, one process, as in
bench_validate.py), then `virtsync plan PATH --base BASE -o json` cold (empty validation
cache) and warm (cache filled), each as the wall time of a fresh process.
Targets: cold ≤ 3× the floor, warm ≤ 1 s.

    .venv/bin/python bench/bench_plan.py [--count 10000] [--changed 0.01] [--json F]
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

sys.path.insert(0, str(Path(__file__).parent))
import vmgen
from bench_validate import floor

VIRTSYNC = str(Path(sys.executable).parent / "virtsync")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), "-c", "user.email=b@virtsync.invalid",
                           "-c", "user.name=bench", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def run_plan(root: Path, base: str, state: Path) -> tuple[float, int, dict[str, object]]:
    env = dict(os.environ, VIRTSYNC_STATE_DIR=str(state))
    t = time.perf_counter()
    p = subprocess.run([VIRTSYNC, "plan", str(root / "vms"), "--base", base, "-o", "json"],
                       env=env, capture_output=True, text=True, cwd=root)
    dt = time.perf_counter() - t
    if p.returncode not in (0, 1):
        raise SystemExit(f"plan failed ({p.returncode}): {p.stderr[-2000:]}")
    return dt, p.returncode, json.loads(p.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--changed", type=float, default=0.01)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        paths = vmgen.generate(root / "vms", args.count)
        git(root, "init", "-q", "-b", "main")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "base")
        base = git(root, "rev-parse", "HEAD")
        step = max(1, round(1 / args.changed))
        changed = paths[::step]
        for p in changed:
            i = int(p.stem.split("-")[1])
            p.write_text(vmgen.render(i, variant=1))
        git(root, "checkout", "-q", "-b", "pr")
        git(root, "commit", "-q", "-am", "pull request")

        floor(paths[:200])  # warm the page cache and the interpreter
        floor_s = min(floor(paths) for _ in range(2))
        state = Path(tmp) / "state"
        cold_s, rc, doc = run_plan(root, base, state)
        warm = [run_plan(root, base, state) for _ in range(3)]
        warm_s = min(w[0] for w in warm)
        assert rc == 1 and all(w[1] == 1 for w in warm)
        summary = doc["summary"]
        assert isinstance(summary, dict)
        assert summary["changes"] == len(changed), summary

    figures = {
        "files": len(paths),
        "changed_files": len(changed),
        "planned_changes": summary["changes"],
        "floor_csafeloader_s": round(floor_s, 2),
        "plan_cold_s": round(cold_s, 2),
        "plan_cold_over_floor": round(cold_s / floor_s, 2),
        "plan_warm_s": round(warm_s, 3),
    }
    for k, v in figures.items():
        print(f"{k:24} {v}")
    verdict = (cold_s <= 3 * floor_s, warm_s <= 1.0)
    print("targets (cold<=3x floor, warm<=1s):", ["met" if ok else "MISSED" for ok in verdict])
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
