"""`virtsync validate` over 10,000 generated VM files (bench/vmgen.py), each run a whole
process, paired with its floor (bench/measure.py):

- validate-cold / validate-cold-cpu: empty cache vs the libyaml (CSafeLoader) parse of
  every file in one process; wall and CPU (issue 13: CPU ≤ 1.2× floor, wall ≤ 0.6× the
  one-process floor on 2 cores); the RSS column is the cold peak (≤ 100 MiB).
- validate-warm-edit: one file's content edited since the last run vs parsing that file.
- validate-warm-same: nothing changed vs a stat of every file.

    python bench/bench_validate.py [--files 10000] [--runs 5] [--json F] [--tree DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure
import vmgen
from measure import Row, Sample


def tree(root: Path, files: int) -> list[Path]:
    """The generated tree (reused when `root` already holds it)."""
    if (root / "group-000").is_dir():
        return sorted(root.rglob("*.yaml"))
    return vmgen.generate(root, files)


def rows(files: int, runs: int, work: Path) -> list[Row]:
    root = work / "repo"
    paths = tree(root, files)
    state = work / "state"
    env = measure.virtsync_env(state)
    validate = [measure.VIRTSYNC, "validate", str(root)]
    parse_all = measure.floor_argv("parse", str(root))
    measure.run(parse_all)  # page cache and interpreter warm for both sides

    def cold() -> Sample:
        shutil.rmtree(state, ignore_errors=True)
        return measure.run(validate, env=env)

    cv, cf = measure.paired(cold, lambda: measure.run(parse_all), runs)
    out = [
        measure.row("validate-cold", f"`validate` cold, {len(paths)} files, wall", cv, cf,
                    floor_what="libyaml parse, one process",
                    target="wall ≤ 0.6× floor (2 cores); peak RSS ≤ 100 MiB"),
        measure.row("validate-cold-cpu", f"`validate` cold, {len(paths)} files, CPU", cv, cf,
                    metric="cpu", floor_what="libyaml parse CPU", target="CPU ≤ 1.2× floor"),
    ]

    sv, sf = measure.paired(lambda: measure.run(validate, env=env),
                            lambda: measure.run(measure.floor_argv("stat", str(root))), runs)
    out.append(measure.row("validate-warm-same", "`validate` warm, nothing changed", sv, sf,
                           floor_what="stat of every file", target="≤ 0.1 s"))

    def target(pair: int) -> Path:
        return paths[(pair * 7919 + 13) % len(paths)]

    edits: list[Path] = []
    parses: list[Path] = []

    def edit_then_validate() -> Sample:
        p = target(len(edits))  # each side counts its own calls: the pair's index
        p.write_text(vmgen.render(int(p.stem.split("-")[1]), variant=len(edits) + 1))
        edits.append(p)
        return measure.run(validate, env=env)

    def parse_one() -> Sample:
        p = target(len(parses))
        parses.append(p)
        return measure.run(measure.floor_argv("parse", str(p)))

    ev, ef = measure.paired(edit_then_validate, parse_one, runs)
    out.append(measure.row("validate-warm-edit", "`validate` warm, one file's content edited",
                           ev, ef, floor_what="parse of that file (process)",
                           target="≤ 0.1 s"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    measure.add_common_arguments(ap)
    ap.add_argument("--tree", type=Path, help="generate into (and reuse) this directory")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        work = args.tree or Path(tmp)
        measure.emit(rows(args.files, args.runs, work), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
