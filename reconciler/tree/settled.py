"""A warm `validate` of an unchanged tree, answered before anything heavy is imported.

A run that validated a tree whose every file had settled (its mtime older than the racy
window when the walk began) stores, with the tree's row, a digest of every file's
(display path, mtime, size, inode): the `stats` column. A later run whose walk gives the
same digest has the same files with the same content (an edit since would show as a
newer mtime), so the stored tree is its answer: no file row read, no file hashed, and
neither the model, the parsers nor the checks imported (issue 13: ≤ 0.1 s at 10,000
files). The digest lives in the scope's row, so a changed virtsync version, schema or
rule code (the namespace, part of the scope) never meets it.

Only plain trees take this path: folders named on the command line holding regular
files. A link, a name that is not UTF-8, an ignore file or a file named directly make
`settled_tree` answer None, and the full incremental path runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import zlib
from array import array
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from reconciler import __version__
from reconciler.core.digest import code_digest
from reconciler.tree.walk import IGNORE_FILE, Entry, Unreadable, display_path, utf8, walk

# The code a cached per-file result depends on besides check/validate.py itself: a change
# to any of it re-checks every file. Named below the reconciler package, which the wheel
# installs as virtsync.reconciler.
CACHED_CODE = ("tree.yamlsafe", "tree.loader", "tree.positions", "check.schema",
               "check.semantic", "check.metanames", "core.model", "core.sensitive",
               "tree.cache", "core.hostdisk", "check.incremental", "tree.settled",
               "tree.walk", "tree.yamlbuild", "core.migration", "core.quantity",
               "core.errors")
ROOT = __name__.rsplit(".", 2)[0]  # reconciler, or virtsync.reconciler
DB_NAME = "validate.sqlite3"  # the cache database, in state_dir()/cache (tree/cache.py)

Stat = tuple[int, int, int]  # (mtime_ns, size, inode)
_F = TypeVar("_F", bound=tuple[Any, ...])


def namespace_digest(version: str, ignore_unknown: bool, code: tuple[str, ...],
                     schema_dir: Path) -> str:
    """Digest of everything a cached result depends on besides the file's bytes
    (`validate` asks twice per run: here on a miss, then validate.py; code_digest
    remembers it)."""
    return code_digest(f"{version}|ignore_unknown={ignore_unknown}",
                       ("check.validate", *code), schema_dir)


def scope_of(namespace: str, paths: Sequence[str]) -> str:
    """The tree a cached index belongs to: display paths depend on the working dir."""
    return hashlib.sha256(json.dumps([namespace, os.getcwd(), list(paths)]).encode()).hexdigest()


def stats_digest(files: Sequence[tuple[str, Stat]]) -> str:
    """Of (display path, stat) pairs in display order."""
    return _stats_digest([shown for shown, _ in files], [st for _, st in files])


def _stats_digest(shown: Sequence[str], stats: Sequence[Stat]) -> str:
    """How many files, their paths (no path holds a NUL), then their numbers as 64-bit
    words: formatting 30,000 numbers as text costs more than the walk's own Python
    (issue 13). A number beyond a signed word (an inode, say) is hashed as text."""
    h = hashlib.sha256(len(shown).to_bytes(8, "little"))
    h.update("\0".join(shown).encode())
    try:
        h.update(array("q", [n for st in stats for n in st]).tobytes())
    except OverflowError:
        h.update(b"\1" + "\0".join([f"{m}\0{s}\0{i}" for m, s, i in stats]).encode())
    return h.hexdigest()


# A tree's files fall into this many buckets by a hash of their display path. Each bucket
# stores the stats digest of its files (once settled) and the digest of their contents,
# so a run whose walk differs in a few buckets reads only those buckets' file rows
# (check/incremental.py `edited`, issue 13: a one-file edit costs one bucket, not 10,000
# rows).
BUCKETS = 256


def bucket_of(shown: str) -> int:
    """A file's bucket: fixed by its display path alone (the same in every run)."""
    return zlib.crc32(shown.encode()) % BUCKETS


def by_bucket(files: Iterable[_F]) -> dict[int, list[_F]]:
    """Files (tuples whose first item is the display path) grouped by bucket, in order."""
    members: dict[int, list[_F]] = {}
    for f in files:
        members.setdefault(bucket_of(f[0]), []).append(f)
    return members


def bucket_stats(files: Iterable[tuple[str, Stat | None]], since_ns: int,
                 racy_ns: int) -> dict[int, str]:
    """Each non-empty bucket's settled stats digest ('' when one of its files has no stat
    or has not settled), of (display path, stat) pairs; as PlainWalk.buckets."""
    return {b: settled_stats(sorted(group), since_ns, racy_ns)
            for b, group in by_bucket(files).items()}


def content_digests(shas: Mapping[str, str]) -> dict[int, str]:
    """Each non-empty bucket's digest of its files' (display path, content sha256)."""
    members: dict[int, list[str]] = {}
    for shown in sorted(shas):
        members.setdefault(bucket_of(shown), []).append(f"{shown}\0{shas[shown]}\n")
    return {b: hashlib.sha256("".join(lines).encode()).hexdigest()
            for b, lines in members.items()}


def tree_digest_of(contents: Mapping[int, str]) -> str:
    """The digest of a tree's every (path, content) pair, from its buckets' digests: a run
    that read a few buckets updates it from theirs."""
    return hashlib.sha256("".join(f"{b}\0{contents[b]}\n"
                                  for b in sorted(contents)).encode()).hexdigest()


def settled_stats(files: Sequence[tuple[str, Stat | None]], since_ns: int,
                  racy_ns: int) -> str:
    """The stats digest to store for a tree whose walk began at `since_ns`; '' when a
    file has no stat or may still be changing within its mtime's granularity."""
    limit = since_ns - racy_ns
    if any(st is None or st[0] >= limit for _, st in files):
        return ""
    return stats_digest([(shown, st) for shown, st in files if st is not None])


class PlainWalk:
    """A plain tree's files as the loader would list them: (display path, absolute path,
    stat) in display order; and when the walk began. A miss hands it to validate_paths,
    so the tree is walked once either way."""

    __slots__ = ("files", "since_ns")

    def __init__(self, files: list[tuple[str, str, Stat]], since_ns: int) -> None:
        self.files = files
        self.since_ns = since_ns

    def stats(self) -> str:
        """stats_digest of every file."""
        return _stats_digest([f[0] for f in self.files], [f[2] for f in self.files])

    def buckets(self, racy_ns: int) -> tuple[dict[int, str], dict[int, list[int]]]:
        """Each non-empty bucket's settled stats digest (as bucket_stats gives it), and the
        indexes in `files` of its files."""
        shown, stats = [f[0] for f in self.files], [f[2] for f in self.files]
        keys = list(map(bucket_of, shown))
        members: dict[int, list[int]] = {}
        for i, b in enumerate(keys):
            members.setdefault(b, []).append(i)
        limit = self.since_ns - racy_ns
        unsettled = {keys[i] for i, st in enumerate(stats) if st[0] >= limit}
        return {b: "" if b in unsettled else
                _stats_digest([shown[i] for i in idx], [stats[i] for i in idx])
                for b, idx in members.items()}, members


def plain_walk(paths: Sequence[str]) -> PlainWalk | None:
    """Every spec under `paths`, when each path is a folder without an ignore file and
    everything under it is a plain folder or a regular file; else None (the loader
    decides, and names what is not plain)."""
    since_ns = time.time_ns()  # before the walk: a file changed later has a newer mtime
    found: dict[str, tuple[str, str, Stat]] = {}
    file = Entry.FILE  # once, not per file (an enum member's lookup is slow)
    for given in paths:
        if not utf8(given):
            return None
        top = Path(given)
        if not top.is_dir() or os.path.lexists(top / IGNORE_FILE):
            return None
        try:
            for what, shown, entry in walk(str(top.resolve()), display_path(top), None):
                if what is not file:
                    return None
                real = entry.path
                if real not in found:  # a folder named twice (or inside another)
                    st = entry.stat(follow_symlinks=False)
                    found[real] = (shown, real, (st.st_mtime_ns, st.st_size, st.st_ino))
        except (Unreadable, OSError):
            return None
    return PlainWalk(sorted(found.values(), key=lambda f: f[0]), since_ns)


def stored_answer(db_path: Path, scope: str, stats: str,
                  ) -> tuple[int, list[list[object]]] | None:
    """(objects, findings as stored) of the scope's tree when its stored stats digest is
    `stats`; None when it is not, or the cache cannot say (missing, locked, damaged)."""
    if not stats or not db_path.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=0.5)
    except sqlite3.Error:
        return None
    try:
        row = db.execute("SELECT stats, objects, findings FROM trees WHERE scope=?",
                         (scope,)).fetchone()
        if row is None or row[0] != stats:
            return None
        findings = json.loads(row[2])
        return (int(row[1]), findings) if isinstance(findings, list) else None
    except (sqlite3.Error, ValueError, TypeError):
        return None
    finally:
        db.close()


def settled_tree(walked: PlainWalk, paths: Sequence[str], ignore_unknown: bool,
                 schema_dir: Path, db_path: Path) -> tuple[int, int, list[list[object]]] | None:
    """(files, objects, stored findings) of the unchanged, settled tree `walked` (the
    plain walk of `paths`); None: validate it."""
    scope = scope_of(namespace_digest(__version__, ignore_unknown, CACHED_CODE, schema_dir), paths)
    found = stored_answer(db_path, scope, walked.stats())
    return None if found is None else (len(walked.files), *found)
