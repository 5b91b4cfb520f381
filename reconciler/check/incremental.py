"""Assemble a validated tree from the cache plus what changed since its last run.

A file whose stat matches the cache is not read; the rest are read, hashed and (when the
content is new) checked, in worker processes for many files (validate._run_checks).
Then, by how much the tree changed:

- nothing (same digest of every path and content): the stored tree row is the answer;
  no per-file result is decoded;
- some files: only the changed files' claims are counted again (an index lookup per
  claim), and only files that can carry a finding are decoded: those with findings of
  their own, those naming host paths, those sharing a duplicated claim;
- no stored tree (a cold cache, another scope): every file's result, in memory.

`validate` on a plain tree (tree/settled.py) first tries `edited`: the files are grouped
in buckets by path, each stored with its files' settled stats digest, so only the rows
of buckets whose stats moved are read; the rest of the tree is as stored, and asked for
only where a cross-file check needs it (flagged files, holders of a duplicated claim).

Same findings and objects as a full check in every case (tests/unit/test_validate_cache.py
compares them); a missing result or a cache error falls back to the full assembly.
"""

from __future__ import annotations

import json
import sqlite3
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from operator import itemgetter
from typing import NamedTuple

from reconciler.check.validate import (
    FileReport,
    _Checker,
    _stat,
    assemble_findings,
    cache_namespace,
    cache_scope,
    final_findings,
    host_facts,
    parse_sources,
    tree_result,
)
from reconciler.core.model import Finding, Manifest
from reconciler.core.statedir import state_dir
from reconciler.tree.cache import (
    DB_NAME,
    RACY_WINDOW_NS,
    FileUpdate,
    Stat,
    StoredTree,
    TreeResult,
    ValidationCache,
)
from reconciler.tree.loader import SourceFile
from reconciler.tree.settled import (
    PlainWalk,
    bucket_stats,
    content_digests,
    settled_stats,
    tree_digest_of,
)

Parsed = dict[str, tuple[Manifest, ...]]


def assemble(sources: Sequence[SourceFile], cache: ValidationCache, checker: _Checker,
             by_display: Mapping[str, SourceFile],
             shas: dict[str, str], since_ns: int = 0) -> tuple[TreeResult, Parsed]:
    """The tree's result; fills `shas` (display path → content sha256). `since_ns`: when
    the walk that listed `sources` began (0: unknown, no settled stats stored)."""
    fresh, parsed, stats = _read_new(sources, cache, checker, shas)
    contents = content_digests(shas)
    digest = tree_digest_of(contents)
    settled = settled_stats(stats, since_ns, RACY_WINDOW_NS) if since_ns else ""
    buckets = _bucket_rows(bucket_stats(stats, since_ns, RACY_WINDOW_NS) if since_ns else {},
                           contents)
    rows = cache.rows
    changed = {p for p, r in fresh.items() if p not in rows or rows[p].sha256 != r.sha256}
    removed = [p for p in rows if p not in shas]
    stored = cache.tree
    if stored is not None and stored.digest == digest and not changed and not removed:
        tree = TreeResult(cache.objects(shas, {}, stored.objects), stored.findings)
        cache.save(_updates(cache, fresh, changed), removed, digest, None, settled, buckets)
        return tree, parsed
    found = None
    if stored is not None:
        try:
            found = _changed(cache, stored, fresh, changed, shas, by_display)
        except sqlite3.Error:
            found = None
    if found is None:
        tree, dups, more = _full(sources, cache, checker, fresh, shas, by_display)
        parsed.update(more)
    else:
        findings, dups, count = found
        tree = TreeResult(cache.objects(shas, {p: fresh[p].result for p in changed}, count),
                          findings)
    cache.save(_updates(cache, fresh, changed), removed, digest,
               StoredTree(digest, tree.findings, dups, len(tree.objects), 0), settled, buckets)
    return tree, parsed


class EditedTree(NamedTuple):
    """A tree answered by `edited`: what `validate` reports (its findings as
    validate._finish gives them)."""

    files: int
    objects: int
    findings: tuple[Finding, ...]


def edited(walked: PlainWalk, paths: Sequence[str], ignore_unknown: bool,
           ) -> EditedTree | None:
    """A plain tree of which only a few buckets (settled.bucket_of) changed since the
    stored tree: only their files' rows are read, only their changed files checked, and
    the cross-file checks answered from the stored claims index (_changed). None: not
    answerable so (no stored buckets, too many changed, a result missing): validate it.
    For `validate`, which reports counts and findings only (issue 13: a one-file edit
    reads one bucket, not 10,000 rows)."""
    namespace = cache_namespace(ignore_unknown)
    current, members = walked.buckets(RACY_WINDOW_NS)
    cache = ValidationCache(state_dir() / "cache" / DB_NAME, namespace,
                            cache_scope(namespace, paths), current)
    try:
        stored = cache.tree
        if not cache.partial or stored is None or cache.examined is None:
            return None
        files = walked.files
        sources = [SourceFile(*files[i][:2], stat=files[i][2])
                   for i in sorted(i for b in cache.examined for i in members.get(b, ()))]
        shas: dict[str, str] = {}
        fresh, _, _ = _read_new(sources, cache, _Checker(ignore_unknown, False, None), shas)
        rows = cache.rows
        changed = {p for p, r in fresh.items() if p not in rows or rows[p].sha256 != r.sha256}
        removed = [p for p in rows if p not in shas]
        contents = {b: c for b, (_, c) in cache.buckets.items() if b not in cache.examined}
        new_contents = content_digests(shas)
        contents.update(new_contents)
        digest = tree_digest_of(contents)
        buckets = _bucket_rows({b: current[b] for b in cache.examined if b in current},
                               new_contents)
        settled = walked.stats() if all(current.values()) else ""
        updates = _updates(cache, fresh, changed)
        if stored.digest == digest and not changed and not removed:
            cache.save(updates, removed, digest, None, settled, buckets)
            return EditedTree(len(walked.files), stored.objects,
                              final_findings(paths, (), stored.findings, stored.objects > 0))
        try:
            found = _changed(cache, stored, fresh, changed, shas, _WalkSources(walked))
        except sqlite3.Error:
            found = None
        if found is None:
            return None
        findings, dups, count = found
        cache.save(updates, removed, digest, StoredTree(digest, findings, dups, count, 0),
                   settled, buckets)
        return EditedTree(len(walked.files), count,
                          final_findings(paths, (), findings, count > 0))
    finally:
        cache.close()


def _read_new(sources: Sequence[SourceFile], cache: ValidationCache, checker: _Checker,
              shas: dict[str, str],
              ) -> tuple[dict[str, FileReport], Parsed, list[tuple[str, Stat | None]]]:
    """Reports of the files whose stat the cache cannot vouch for (read, hashed and
    checked when their content is new), what this process parsed, and every file's stat;
    fills `shas` for all of `sources`."""
    todo: list[SourceFile] = []
    stats: list[tuple[str, Stat | None]] = []
    for src in sources:
        st = _stat(src)
        stats.append((src.display, st))
        sha = cache.known_sha(src.display, st) if st is not None else None
        if sha is None:
            todo.append(src)
        else:
            shas[src.display] = sha
    fresh_list, parsed = checker.run(todo, cache)
    shas.update((r.path, r.sha256) for r in fresh_list)
    return {r.path: r for r in fresh_list}, parsed, stats


class _WalkSources(Mapping[str, SourceFile]):
    """A plain walk's files by display path, made into SourceFiles only when asked for
    (to locate a rare cross-file finding): not 10,000 objects per run."""

    def __init__(self, walked: PlainWalk) -> None:
        self._files = walked.files  # sorted by display path

    def __getitem__(self, shown: str) -> SourceFile:
        i = bisect_left(self._files, shown, key=itemgetter(0))
        if i == len(self._files) or self._files[i][0] != shown:
            raise KeyError(shown)
        _, real, st = self._files[i]
        return SourceFile(shown, real, stat=st)

    def __len__(self) -> int:
        return len(self._files)

    def __iter__(self) -> Iterator[str]:
        return (shown for shown, _, _ in self._files)


def _bucket_rows(stats: Mapping[int, str], contents: Mapping[int, str],
                 ) -> dict[int, tuple[str, str]]:
    """The `buckets` rows of the files whose content digests are `contents`; a bucket
    without settled stats gets '' (its rows are read again next run)."""
    return {b: (stats.get(b, ""), c) for b, c in contents.items()}


def _updates(cache: ValidationCache, fresh: Mapping[str, FileReport],
             changed: set[str]) -> list[FileUpdate]:
    """Rows to write: changed files, and files whose stat alone moved (or settled out of
    the racy window), so the next run need not read them."""
    settled = time.time_ns() - RACY_WINDOW_NS
    out = []
    for p, r in sorted(fresh.items()):
        if p in changed:
            host = bool(host_facts((p, c) for c in r.result.facts))
            out.append(FileUpdate(p, r.stat, r.sha256, r.result, host))
        elif r.stat is not None and (cache.rows[p].stat != r.stat or r.stat[0] < settled):
            out.append(FileUpdate(p, r.stat, r.sha256, None))
    return out


def _changed(cache: ValidationCache, stored: StoredTree, fresh: Mapping[str, FileReport],
             changed: set[str], shas: Mapping[str, str],
             by_display: Mapping[str, SourceFile],
             ) -> tuple[tuple[Finding, ...], frozenset[tuple[str, str]], int] | None:
    """The stored tree updated by the changed and removed files alone: its findings, the
    claims made more than once, and how many objects it has. `shas`: every file of the
    cache's `rows` still in the tree; after a partial read (cache.examined), files of
    the other buckets are as stored, and asked for only when they can carry a finding."""
    rows = cache.rows
    gone = [p for p in rows if p not in shas or p in changed]
    old: Counter[tuple[str, str]] = Counter(cache.claims_of(gone))
    new: Counter[tuple[str, str]] = Counter(s for p in changed for s in fresh[p].result.slots())
    affected = set(old) | set(new)
    counts = cache.slot_counts(affected)
    dups = frozenset((stored.dups - affected)
                     | {s for s in affected if counts.get(s, 0) - old[s] + new[s] > 1})
    relevant = {p: sha for p, sha in shas.items() if p not in changed and rows[p].flags}
    relevant.update(cache.flagged_elsewhere())
    if dups:
        for p in cache.slot_paths(dups) - changed - relevant.keys():
            sha = shas.get(p) if p in shas or p in rows else cache.stored_sha(p)
            if sha is not None:  # None: a file gone from the tree
                relevant[p] = sha
    reports = [fresh[p] for p in changed]
    for p, sha in relevant.items():
        hit = cache.get(sha)
        if hit is None:
            return None  # a result went missing: assemble it all
        reports.append(FileReport(p, sha, hit, cached=True))
    reports.sort(key=lambda r: r.path)
    count = (stored.objects - sum(len(json.loads(rows[p].objects)) for p in gone)
             + sum(len(fresh[p].result.objects) for p in changed))
    return tuple(assemble_findings(reports, dups, by_display)), dups, count


def _full(sources: Sequence[SourceFile], cache: ValidationCache, checker: _Checker,
          fresh: dict[str, FileReport], shas: Mapping[str, str],
          by_display: Mapping[str, SourceFile],
          ) -> tuple[TreeResult, frozenset[tuple[str, str]], Parsed]:
    """Every file's result: from this run, else the cache, else checked now."""
    reports: dict[str, FileReport] = dict(fresh)
    missing = []
    for src in sources:
        if src.display in reports:
            continue
        hit = cache.get(shas[src.display])
        if hit is None:
            missing.append(src)
        else:
            reports[src.display] = FileReport(src.display, shas[src.display], hit, cached=True)
    more: Parsed = {}
    if missing:
        again, more = checker.run(missing, cache)
        reports.update((r.path, r) for r in again)
    tree, dups = tree_result([reports[s.display] for s in sources], by_display)
    return tree, dups, more


def manifests(sources: Sequence[SourceFile], cache: ValidationCache, checker: _Checker,
              parsed: Parsed, shas: Mapping[str, str]) -> tuple[Manifest, ...]:
    """Every document of the tree, in file order: parsed this run, else from the cache,
    else parsed now (host-mode plan and apply; nothing whole is sent back by workers
    when the cache has the files)."""
    per_file: dict[str, tuple[Manifest, ...]] = {}
    missing: list[SourceFile] = []
    new: dict[str, tuple[Manifest, ...]] = {}
    for src in sources:
        sha = shas[src.display]
        got = parsed.get(src.display)
        if got is not None:
            new[sha] = got
        else:
            got = cache.get_manifests(sha, src.display)
        if got is None:
            missing.append(src)
        else:
            per_file[src.display] = got
    for display, sha, docs in parse_sources(missing, checker.workers):
        per_file[display] = new[sha] = docs
    cache.save_manifests(new)
    return tuple(m for src in sources for m in per_file[src.display])
