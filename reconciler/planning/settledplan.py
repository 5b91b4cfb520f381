"""A warm `plan --base` of an unchanged tree against unchanged commits, from its stored plan.

Git mode's plan is a function of the work tree's bytes under PATH, the base commit, the
HEAD commit (its fingerprint), git's index (the blob ids of files git sees as clean),
the working directory (display paths), `--target` and virtsync's own code. When a run
finds the tree plain and settled (tree/settled.py: every file older than the racy
window, so an edit since shows as a new mtime), valid without a single finding, and the
base revision readable without a warning, its plan is stored under a digest of all of
those; a later run with the same digest decodes that plan instead of validating,
listing and parsing (issue 13: `plan --base` warm ≤ 0.2 s at 10,000 files). Anything
else — a link, an ignore file, a finding, a moved ref, a touched index, another code
version — takes the full path, as does `--no-cache`.

Stored are the plan's JSON form and the storing run's rendering when it was not
coloured (what `plan -o text|markdown|json` printed): secrets are already masked in both
(safety rule 10). A later run that only prints that rendering prints it as stored; any
other run (another output, `--out-file`, colour, a GitHub step summary) decodes the
stored plan. One row per (working dir, PATH, REV, target).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.check import SCHEMA_DIR
from reconciler.core.digest import PACKAGE, code_digest, package_modules
from reconciler.core.errors import VirtsyncError
from reconciler.core.statedir import state_dir
from reconciler.tree.settled import PlainWalk, plain_walk, settled_stats

if TYPE_CHECKING:
    from reconciler.planning.plan_model import Plan

# The plan model and codec are imported only to decode or store a plan: a run that
# prints a stored rendering needs neither (issue 13).

DB_NAME = "gitplan.sqlite3"  # in state_dir()/cache, beside the validation cache
_TABLE = "plans_1"  # a new column set gets a new name: an older table is left unread
_PACKAGE = PACKAGE  # reconciler (virtsync/reconciler in the wheel)


@dataclass(frozen=True)
class Probe:
    """What this run's plan is a function of, read without importing the planner."""

    path: str
    base: str
    walked: PlainWalk  # the work tree's plain walk (validation takes it over on a miss)
    scope: str  # the row: working dir, PATH, REV, target
    inputs: str  # digest of everything but the files' stats


def package_digest() -> str:
    """Every module of the package and every schema: a plan depends on most of them."""
    return code_digest("", package_modules(_PACKAGE), SCHEMA_DIR, _PACKAGE)


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns]


def _git_state(folder: str, base: str) -> list[Any] | None:
    """(top level, base commit, HEAD commit, index and config stats) from one `git
    rev-parse`; None when git cannot say (the full path then reports why)."""
    try:
        done = subprocess.run(["git", "-C", folder, "rev-parse", "--show-toplevel",
                               "--git-path", "index", "--git-path", "config",
                               f"{base}^{{commit}}", "HEAD^{commit}", "--"],
                              capture_output=True, check=False)
    except OSError:
        return None
    lines = done.stdout.decode("utf-8", errors="surrogateescape").splitlines()
    if done.returncode != 0 or len(lines) != 6 or lines[5] != "--":
        return None
    top, index, config, base_commit, head_commit = lines[:5]
    if not all(len(c) in (40, 64) and c.isalnum() for c in (base_commit, head_commit)):
        return None
    return [top, base_commit, head_commit, _stat(os.path.join(folder, index)),
            _stat(os.path.join(folder, config))]


def probe(path: str, base: str, target: str | None) -> Probe | None:
    """This run's inputs, when the tree at `path` is plain and git can name both
    commits; None: plan in full."""
    if base.startswith("-"):
        return None  # the full path refuses it, naming it
    walked = plain_walk([path])
    inputs = _inputs(path, base) if walked is not None else None
    if walked is None or inputs is None:
        return None
    return Probe(path, base, walked, _digest([os.getcwd(), path, base, target]), inputs)


def _inputs(path: str, base: str) -> str | None:
    """Digest of the code, the folder and git's state (the files' stats aside)."""
    git = _git_state(path, base)
    return None if git is None else _digest([package_digest(), os.path.abspath(path), *git])


def _digest(parts: list[Any]) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _db() -> Path:
    return state_dir() / "cache" / DB_NAME


def _row(p: Probe) -> tuple[str, str, int] | None:
    """(plan document, renderings, empty) stored for these inputs with these file
    stats; None: plan."""
    db_path = _db()
    if not db_path.is_file():
        return None
    key = _digest([p.inputs, p.walked.stats()])
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=0.5)
    except sqlite3.Error:
        return None
    try:
        row = db.execute(f"SELECT key, plan, outputs, empty FROM {_TABLE} WHERE scope=?",
                         (p.scope,)).fetchone()
        return (row[1], row[2], row[3]) if row is not None and row[0] == key else None
    except sqlite3.Error:
        return None
    finally:
        db.close()


def stored_output(p: Probe, output: str) -> tuple[str, bool] | None:
    """The stored rendering `output` (text without colour, markdown, json) of the plan
    for these inputs, and whether that plan is empty; None: plan."""
    row = _row(p)
    try:
        outputs = json.loads(row[1]) if row is not None else None
    except ValueError:
        return None
    shown = outputs.get(output) if isinstance(outputs, dict) else None
    return (shown, bool(row[2])) if isinstance(shown, str) and row is not None else None


def stored(p: Probe) -> Plan | None:
    """The stored plan of these inputs with these file stats; None: plan."""
    from reconciler.planning.plan_codec import from_document

    row = _row(p)
    try:
        return from_document(json.loads(row[0])) if row is not None else None
    except (ValueError, VirtsyncError):
        return None


def remember(p: Probe, plan: Plan, outputs: Mapping[str, str]) -> None:
    """Store a plan made from `p`'s inputs with `outputs` (output name → its text), when
    every file had settled, git still says what it said before the plan was made (a ref
    or the index moving meanwhile leaves nothing stored) and the plan's JSON form decodes
    to this very plan (what a later run renders). A cache that cannot be written is
    skipped silently."""
    from reconciler.planning.plan_codec import from_document, to_document
    from reconciler.tree.cache import RACY_WINDOW_NS  # only when storing

    stats = settled_stats([(shown, st) for shown, _, st in p.walked.files],
                          p.walked.since_ns, RACY_WINDOW_NS)
    if not stats or _inputs(p.path, p.base) != p.inputs:
        return
    text = json.dumps(to_document(plan))
    try:
        if from_document(json.loads(text)) != plan:
            return
    except VirtsyncError:
        return
    db_path = _db()
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(db_path, timeout=0.5, isolation_level=None)
    except (OSError, sqlite3.Error):
        return
    try:
        db.execute(f"CREATE TABLE IF NOT EXISTS {_TABLE} (scope TEXT PRIMARY KEY, key TEXT, "
                   "plan TEXT, outputs TEXT, empty INTEGER)")
        db.execute(f"INSERT OR REPLACE INTO {_TABLE} VALUES (?, ?, ?, ?, ?)",
                   (p.scope, _digest([p.inputs, stats]), text, json.dumps(dict(outputs)),
                    int(plan.empty)))
    except sqlite3.Error:
        return
    finally:
        db.close()
