"""Run issue 13's benchmark rows and record them as bench/results/<label>.json and .md.

    python bench/run_all.py --label before                       # every row (~1 h on 2 cores)
    python bench/run_all.py --label before --rows validate,help  # groups or row keys
    python bench/run_all.py --list

Rows already in <label>.json that this run does not measure are kept, so groups can be
run one at a time (and re-run) into the same label. Every figure: whole processes,
`--runs` paired runs (alternating order), median (min–max), peak RSS (bench/measure.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure
from measure import Row

RESULTS = measure.BENCH / "results"

# group → (its row keys in table order, how to run it: (files, runs, work) → rows)
Runner = Callable[[int, int, Path], list[Row]]


def _validate(files: int, runs: int, work: Path) -> list[Row]:
    import bench_validate

    return bench_validate.rows(files, runs, work)


def _plan(files: int, runs: int, work: Path) -> list[Row]:
    import bench_plan

    return bench_plan.rows(files, runs, work)


def _host(files: int, runs: int, work: Path) -> list[Row]:
    import bench_host

    return bench_host.rows(files, runs, work)


def _real(_files: int, runs: int, work: Path) -> list[Row]:
    import bench_real

    return bench_real.measured(50, runs)  # the 50 VMs, whatever --files says


def _watch(files: int, runs: int, _work: Path) -> list[Row]:
    import bench_watch

    return bench_watch.rows(files, runs)


GROUPS: dict[str, tuple[tuple[str, ...], Runner]] = {
    "validate": (("validate-warm-edit", "validate-warm-same", "validate-cold",
                  "validate-cold-cpu"), _validate),
    "plan": (("plan-base-warm", "plan-base-warm-edit", "plan-base-cold"), _plan),
    "host": (("host-plan", "host-apply", "host-watch-start", "host-plan-daemon",
              "host-apply-daemon", "host-watch-start-daemon"), _host),
    "real": (("real-apply-50", "real-noop-apply", "real-noop-plan", "help"), _real),
    "watch": (("watch-latency", "watch-resync", "watch-startup-create"), _watch),
}
ORDER = [k for keys, _ in GROUPS.values() for k in keys]


def groups_for(selection: str | None) -> list[str]:
    if not selection:
        return list(GROUPS)
    wanted = set(selection.split(","))
    unknown = wanted - set(GROUPS) - set(ORDER)
    if unknown:
        raise SystemExit(f"unknown rows: {', '.join(sorted(unknown))} (see --list)")
    return [g for g, (keys, _) in GROUPS.items() if g in wanted or wanted & set(keys)]


def _load(path: Path) -> dict[str, Any]:
    if path.exists():
        doc: dict[str, Any] = json.loads(path.read_text())
        return doc
    return {"rows": []}


def _markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [f"# Benchmarks: {doc['label']}", "",
             f"Machine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}, "
             f"Linux {m['kernel']}. Each row: {doc['runs']} paired runs of whole processes "
             "(alternating order), median (min–max); peak RSS is virtsync's median.", "",
             measure.HEADER]
    lines += [measure.row_from_json(r).markdown() for r in doc["rows"]]
    lines += ["", "| row | target | load average (1 min) before → after | extra |",
              "| --- | --- | --- | --- |"]
    for r in doc["rows"]:
        load = r.get("load", ["?", "?"])
        extra = json.dumps(r["extra"]) if r["extra"] else ""
        lines.append(f"| {r['key']} | {r['target']} | {load[0]} → {load[1]} | {extra} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", default="latest", help="results file name (before, after…)")
    ap.add_argument("--rows", help="comma-separated groups or row keys (default: all)")
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--list", action="store_true", help="list groups and rows")
    ap.add_argument("--merge", metavar="LABEL", nargs="+",
                    help="only fold these labels' rows into --label (runs made apart)")
    args = ap.parse_args()
    measure.ensure_bytecode()
    if args.list:
        for g, (keys, _) in GROUPS.items():
            print(f"{g}: {', '.join(keys)}")
        return 0
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{args.label}.json"
    if args.merge:
        doc = _load(path)
        for other in args.merge:
            rows = _load(RESULTS / f"{other}.json")["rows"]
            _store(path, doc, {r["key"]: r for r in rows})
        return 0
    for group in groups_for(args.rows):
        keys, runner = GROUPS[group]
        load0 = round(os.getloadavg()[0], 1)
        t = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"bench-{group}-") as tmp:
            rows = runner(args.files, args.runs, Path(tmp))
        load1 = round(os.getloadavg()[0], 1)
        print(measure.table(rows), f"\n({group}: {time.perf_counter() - t:.0f} s)", flush=True)
        doc = _load(path)
        doc.update(label=args.label, machine=measure.machine(), runs=args.runs)
        _store(path, doc, {r.key: dict(r.as_json(), load=[load0, load1], files=args.files)
                           for r in rows})
    return 0


def _store(path: Path, doc: dict[str, Any], fresh: dict[str, dict[str, Any]]) -> None:
    """Replace the rows measured again, keep the others, in table order."""
    kept = [r for r in doc["rows"] if r["key"] not in fresh]
    doc["rows"] = sorted(kept + list(fresh.values()),
                         key=lambda r: ORDER.index(r["key"]) if r["key"] in ORDER else 99)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    path.with_suffix(".md").write_text(_markdown(doc))


if __name__ == "__main__":
    sys.exit(main())
