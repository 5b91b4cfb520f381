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

Same findings and objects as a full check in every case (tests/unit/test_validate_cache.py
compares them); a missing result or a cache error falls back to the full assembly.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Mapping, Sequence

from reconciler.check.validate import (
    FileReport,
    _Checker,
    _stat,
    assemble_findings,
    host_facts,
    parse_sources,
    tree_digest,
    tree_result,
)
from reconciler.core.model import Manifest
from reconciler.tree.cache import (
    RACY_WINDOW_NS,
    FileUpdate,
    Stat,
    StoredTree,
    TreeResult,
    ValidationCache,
)
from reconciler.tree.loader import SourceFile
from reconciler.tree.settled import settled_stats

Parsed = dict[str, tuple[Manifest, ...]]


def assemble(sources: Sequence[SourceFile], cache: ValidationCache, checker: _Checker,
             by_display: Mapping[str, SourceFile],
             shas: dict[str, str], since_ns: int = 0) -> tuple[TreeResult, Parsed]:
    """The tree's result; fills `shas` (display path → content sha256). `since_ns`: when
    the walk that listed `sources` began (0: unknown, no settled stats stored)."""
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
    fresh = {r.path: r for r in fresh_list}
    shas.update((r.path, r.sha256) for r in fresh_list)
    digest = tree_digest(shas)
    settled = settled_stats(stats, since_ns, RACY_WINDOW_NS) if since_ns else ""
    rows = cache.rows
    changed = {p for p, r in fresh.items() if p not in rows or rows[p].sha256 != r.sha256}
    removed = [p for p in rows if p not in shas]
    stored = cache.tree
    if stored is not None and stored.digest == digest and not changed and not removed:
        tree = TreeResult(cache.objects(shas, {}, stored.objects), stored.findings)
        cache.save(_updates(cache, fresh, changed), removed, digest, None, settled)
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
        tree, dups = found
    cache.save(_updates(cache, fresh, changed), removed, digest,
               StoredTree(digest, tree.findings, dups, len(tree.objects), 0), settled)
    return tree, parsed


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
             ) -> tuple[TreeResult, frozenset[tuple[str, str]]] | None:
    """The stored tree updated by the changed and removed files alone."""
    rows = cache.rows
    gone = [p for p in rows if p not in shas or p in changed]
    old: Counter[tuple[str, str]] = Counter(cache.claims_of(gone))
    new: Counter[tuple[str, str]] = Counter(s for p in changed for s in fresh[p].result.slots())
    affected = set(old) | set(new)
    counts = cache.slot_counts(affected)
    dups = frozenset((stored.dups - affected)
                     | {s for s in affected if counts.get(s, 0) - old[s] + new[s] > 1})
    unchanged = {p for p in shas if p not in changed}
    relevant = {p for p in unchanged if rows[p].flags}
    if dups:
        relevant |= cache.slot_paths(dups) & unchanged
    reports = [fresh[p] for p in changed]
    for p in relevant:
        hit = cache.get(shas[p])
        if hit is None:
            return None  # a result went missing: assemble it all
        reports.append(FileReport(p, shas[p], hit, cached=True))
    reports.sort(key=lambda r: r.path)
    count = (stored.objects - sum(len(json.loads(rows[p].objects)) for p in gone)
             + sum(len(fresh[p].result.objects) for p in changed))
    findings = tuple(assemble_findings(reports, dups, by_display))
    objects = cache.objects(shas, {p: fresh[p].result for p in changed}, count)
    return TreeResult(objects, findings), dups


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
