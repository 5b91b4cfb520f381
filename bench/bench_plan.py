"""`virtsync plan PATH --base BASE -o json` (git mode) over 10,000 generated VM files,
1% of them changed between the base commit and the pull-request head; each run a whole
process, paired with its floor (bench/measure.py):

- plan-base-cold: empty validation cache vs the libyaml parse of every file (one process);
- plan-base-warm: cache filled (issue 13 target ≤ 0.2 s); no floor in the issue's table,
  so the column shows `git diff --name-only` + parsing the changed files, the least any
  git-mode plan must do;
- plan-base-warm-edit: cache filled, and one more file edited in the work tree just before
  each run (a different file each time), as when a user edits and plans again: the run
  cannot answer from an unchanged tree. Floor: `git diff --name-only BASE` (against the
  work tree) + parsing the files it names.

    python bench/bench_plan.py [--files 10000] [--changed 0.01] [--runs 5] [--json F]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure
import vmgen
from measure import Row, Sample


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), "-c", "user.email=b@virtsync.invalid",
                           "-c", "user.name=bench", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def repo(root: Path, files: int, changed: float) -> tuple[str, list[Path], list[Path]]:
    """A git repo: base commit, then a branch with every 1/changed-th file edited."""
    paths = vmgen.generate(root / "vms", files)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    base = git(root, "rev-parse", "HEAD")
    edited = paths[::max(1, round(1 / changed))]
    for p in edited:
        p.write_text(vmgen.render(int(p.stem.split("-")[1]), variant=1))
    git(root, "checkout", "-q", "-b", "pr")
    git(root, "commit", "-q", "-am", "pull request")
    return base, paths, edited


DIFF_FLOOR = """
import subprocess, sys, yaml
root, *revs = sys.argv[1:]  # BASE HEAD, or BASE alone: against the work tree
names = subprocess.run(["git", "-C", root, "diff", "--name-only", *revs],
                       check=True, capture_output=True, text=True).stdout.split()
for n in names:
    with open(f"{root}/{n}", "rb") as fh:
        yaml.load(fh.read(), Loader=yaml.CSafeLoader)
"""


def rows(files: int, runs: int, work: Path, changed: float = 0.01) -> list[Row]:
    root = work / "repo"
    base, paths, edited = repo(root, files, changed)
    state = work / "state"
    env = measure.virtsync_env(state)
    plan = [measure.VIRTSYNC, "plan", str(root / "vms"), "--base", base, "-o", "json"]
    parse_all = measure.floor_argv("parse", str(root / "vms"))
    measure.run(parse_all)  # page cache and interpreter warm for both sides

    def run_plan() -> Sample:
        return measure.run(plan, env=env, cwd=root, ok=(1,))  # 1: the plan has changes

    def cold() -> Sample:
        shutil.rmtree(state, ignore_errors=True)
        return run_plan()

    cv, cf = measure.paired(cold, lambda: measure.run(parse_all), runs)
    wv, wf = measure.paired(run_plan, lambda: measure.run(
        [sys.executable, "-c", DIFF_FLOOR, str(root), base, "HEAD"]), runs)
    untouched = iter([p for p in paths if p not in set(edited)])

    def edit_then_plan() -> Sample:
        p = next(untouched)
        p.write_text(vmgen.render(int(p.stem.split("-")[1]), variant=2))
        return run_plan()

    def edit_then_floor() -> Sample:
        p = next(untouched)
        p.write_text(vmgen.render(int(p.stem.split("-")[1]), variant=2))
        return measure.run([sys.executable, "-c", DIFF_FLOOR, str(root), base])

    ev, ef = measure.paired(edit_then_plan, edit_then_floor, runs)
    what = f"{len(paths)} files, {len(edited)} changed"
    return [
        measure.row("plan-base-cold", f"`plan --base` cold, {what}", cv, cf,
                    floor_what="libyaml parse, one process"),
        measure.row("plan-base-warm", f"`plan --base` warm, {what}", wv, wf,
                    floor_what="git diff + parse changed files", target="≤ 0.2 s"),
        measure.row("plan-base-warm-edit", f"`plan --base` warm, {what}, one more file "
                    "edited in the work tree before each run", ev, ef,
                    floor_what="git diff + parse changed files"),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    measure.add_common_arguments(ap)
    ap.add_argument("--changed", type=float, default=0.01)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        measure.emit(rows(args.files, args.runs, Path(tmp), args.changed), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
