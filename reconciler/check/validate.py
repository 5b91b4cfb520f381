"""The validation pipeline: load → kind check → JSON Schema → semantic checks → tree checks.

Per-file work (`check_bytes`) depends only on the file's bytes, so it is cached by
content hash and spread over worker processes on a cold run. Cross-file checks (unique
names, UUIDs, MACs, serials) run on the small per-file facts every time.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from reconciler import __version__
from reconciler.check import SCHEMA_DIR
from reconciler.core import hostdisk
from reconciler.core.model import (
    KNOWN_KINDS,
    Finding,
    HasFindings,
    Issue,
    JSONPath,
    Manifest,
    ManifestFacts,
    ObjectKey,
    SourceRef,
    format_path,
)
from reconciler.core.statedir import state_dir
from reconciler.tree import cache as cache_module
from reconciler.tree import settled
from reconciler.tree.cache import (
    CachedFacts,
    CachedFile,
    Slot,
    Stat,
    TreeResult,
    ValidationCache,
)
from reconciler.tree.loader import (
    LoadedFile,
    SourceFile,
    find_yaml_files,
    load_bytes,
    read_source,
)

if TYPE_CHECKING:
    from reconciler.check.semantic import LineOf
    from reconciler.tree.yamlsafe import AliasBudget

# Parsers, the schema validator and the worker pool are imported where they are used: a
# warm run checks nothing and must not pay for them (issue 13).

# The code a cached per-file result depends on (besides this module): a change to any of
# it re-checks every file.
_CACHED_CODE = settled.CACHED_CODE

# Below this many files to parse, worker start-up costs more than it saves.
PARALLEL_THRESHOLD = 96


class FileReport(NamedTuple):  # not a dataclass: cheaper to define (cache.py)
    path: str
    sha256: str
    result: CachedFile
    manifests: tuple[Manifest, ...] = ()
    stat: Stat | None = None
    cached: bool = False  # the result came from the cache (nothing parsed)


@dataclass(frozen=True)
class ValidationReport(HasFindings):
    files: tuple[str, ...]  # display paths of the files read
    findings: tuple[Finding, ...]
    objects: Sequence[tuple[SourceRef, ObjectKey]]
    manifests: tuple[Manifest, ...] = field(default=())
    # With keep_parsed: the manifests of each file this process parsed (a cache hit
    # parses nothing), so a caller that needs them does not parse the file again.
    # Files checked in worker processes are left out: sending every file's manifests
    # back costs more than parsing again the few a caller needs (bench/bench_plan.py).
    parsed: Mapping[str, tuple[Manifest, ...]] = field(default_factory=dict)
    # Files the folder walk met as regular files (no link on their last component), so
    # a caller need not ask the file system again (gitplan's blob ids).
    regular: frozenset[str] = frozenset()


def kind_issue(m: Manifest) -> Issue | None:
    """None when virtsync knows (apiVersion, kind); else the reason it does not."""
    from reconciler.check import schema

    kinds = KNOWN_KINDS.get(m.group)
    if kinds is None or m.kind not in kinds:
        known = ", ".join(sorted(k for ks in KNOWN_KINDS.values() for k in ks))
        return Issue(("kind",), f'unknown kind "{m.kind}" (apiVersion "{m.api_version}"); '
                     f"virtsync handles: {known}", "kind.unknown")
    if not schema.has_schema(m.api_version, m.kind):
        return Issue(("apiVersion",), f'unsupported apiVersion "{m.api_version}" for kind '
                     f"{m.kind}", "kind.unknown-version")
    return None


def check_loaded(loaded: LoadedFile, text: str, *, ignore_unknown: bool) -> CachedFile:
    """Every per-file check on one parsed file. Pure."""
    from reconciler.check import schema, semantic

    findings = list(loaded.findings)
    objects: list[tuple[int, ObjectKey]] = []
    facts: list[CachedFacts] = []
    for m in loaded.manifests:
        unknown = kind_issue(m)
        if unknown is not None:
            if not ignore_unknown or unknown.rule != "kind.unknown":
                findings.append(_locate(loaded.path, text, m.source.doc, unknown))
            continue
        objects.append((m.source.doc, m.key))
        # Every check runs even when the schema fails, so one run reports every problem
        # (semantic reads no shape for granted); a node the schema already reports is
        # not reported twice.
        issues = schema.check_schema(m)
        reported = {i.path for i in issues}
        issues += [i for i in semantic.check_manifest(m) if i.path not in reported]
        f = semantic.facts(m)
        facts.append(CachedFacts(m.source.doc, f.key, f.claims, f.host_paths))
        findings.extend(_locate(loaded.path, text, m.source.doc, i) for i in issues)
    return CachedFile(tuple(objects), tuple(sorted(findings)), tuple(facts), loaded.documents)


def _locate(display: str, text: str, doc: int, issue: Issue) -> Finding:
    from reconciler.tree.positions import locate

    line, col = locate(text, doc, issue.path)
    return Finding(display, line, col, format_path(issue.path), issue.message, issue.rule)


def check_bytes(content: bytes, display: str, *, ignore_unknown: bool = False,
                keep_manifests: bool = False, run_budget: AliasBudget | None = None) -> FileReport:
    loaded = load_bytes(content, display, run_budget)
    text = content.decode("utf-8", errors="replace").lstrip("\ufeff")
    result = check_loaded(loaded, text, ignore_unknown=ignore_unknown)
    return FileReport(display, loaded.sha256, result,
                      loaded.manifests if keep_manifests else ())


# A worker process's share of the run's alias budget and its own cache connection (set
# by init_worker; a forked child never uses its parent's SQLite connection).
_worker_budget: AliasBudget | None = None
_worker_cache: tuple[sqlite3.Connection, str] | None = None


def init_worker(share: int, cache: tuple[Path, str] | None = None) -> None:
    """A worker process's initializer: its share of the run's alias budget and its own
    reader of the validation cache."""
    from reconciler.tree.yamlsafe import AliasBudget

    global _worker_budget, _worker_cache
    _worker_budget = AliasBudget(share, "run")
    reader = cache_module.open_reader(cache[0]) if cache is not None else None
    _worker_cache = (reader, cache[1]) if reader is not None and cache is not None else None


def _read_check(src: SourceFile, ignore_unknown: bool, keep: bool,
                cached: Callable[[str], CachedFile | None],
                budget: AliasBudget | None) -> FileReport:
    """Stat, read and hash one file; parse and check it only when its content is new."""
    stat = _stat(src)
    data = read_source(src)
    sha = hashlib.sha256(data).hexdigest()
    hit = cached(sha)
    if hit is not None:
        return FileReport(src.display, sha, hit, stat=stat, cached=True)
    report = check_bytes(data, src.display, ignore_unknown=ignore_unknown,
                         keep_manifests=keep, run_budget=budget)
    return FileReport(src.display, report.sha256, report.result, report.manifests, stat)


def _no_cache(sha: str) -> CachedFile | None:
    return None


def _worker_lookup(sha: str) -> CachedFile | None:
    if _worker_cache is None:
        return None
    return cache_module.lookup(_worker_cache[0], _worker_cache[1], sha)


def worker_budget() -> AliasBudget | None:
    """This worker's share of the run's alias budget (None outside a worker)."""
    return _worker_budget


def _check_source(job: tuple[SourceFile, bool, bool]) -> FileReport:
    src, ignore_unknown, keep = job
    return _read_check(src, ignore_unknown, keep, _worker_lookup, _worker_budget)


def _cacheable(report: FileReport) -> bool:
    """A refusal for the run's alias budget depends on the other files, not on this one."""
    from reconciler.tree.yamlsafe import RUN_BUDGET_RULE

    return not any(f.rule == RUN_BUDGET_RULE for f in report.result.findings)


@lru_cache(maxsize=4)
def cache_namespace(ignore_unknown: bool) -> str:
    """Digest of everything a cached result depends on besides the file's bytes."""
    return settled.namespace_digest(__version__, ignore_unknown, _CACHED_CODE, SCHEMA_DIR)


def _stat(src: SourceFile) -> Stat | None:
    if src.stat is not None:
        return src.stat  # the walk's, taken before the file is read
    try:
        st = os.stat(src.absolute)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def cache_scope(namespace: str, paths: Sequence[str]) -> str:
    """The tree a cached index belongs to: display paths depend on the working dir."""
    return settled.scope_of(namespace, paths)


def validate_paths(
    paths: Sequence[str],
    *,
    ignore_unknown: bool = False,
    use_cache: bool = True,
    keep_manifests: bool = False,
    keep_parsed: bool = False,
    workers: int | None = None,
    walked: settled.PlainWalk | None = None,
) -> ValidationReport:
    """Validate every YAML file under `paths`. Raises VirtsyncError for a missing path.

    Warm runs: a file whose (mtime, size, inode) match the cache is not even read; an
    unchanged tree is answered from the cached tree row without decoding any result, and
    a changed one re-assembles from the changed files' claims (incremental.py).
    `walked`: the plain walk of `paths` the caller made already (tree/settled.py)."""
    if walked is not None:
        since_ns = walked.since_ns
        sources = [SourceFile(shown, real, stat=st) for shown, real, st in walked.files]
        path_findings: list[Finding] = []
    else:
        since_ns = time.time_ns()  # before the walk: a file changed later has a newer mtime
        sources, path_findings = find_yaml_files(paths)
    by_display = {s.display: s for s in sources}
    if not use_cache:
        keep_here = keep_parsed and not _parallel(len(sources), workers)
        keep = keep_manifests or keep_here
        results = {r.path: r for r in _run_checks(sources, None, ignore_unknown, keep, workers)}
        ordered = [results[s.display] for s in sources]
        fresh, _ = tree_result(ordered, by_display)
        return _finish(paths, sources, path_findings, fresh,
                       tuple(m for r in ordered for m in r.manifests) if keep_manifests else (),
                       {r.path: r.manifests for r in ordered} if keep_here else {})
    from reconciler.check import incremental  # imports this module

    namespace = cache_namespace(ignore_unknown)
    cache = ValidationCache(state_dir() / "cache" / cache_module.DB_NAME, namespace,
                            cache_scope(namespace, paths))
    checker = _Checker(ignore_unknown, keep_parsed, workers, keep_manifests)
    shas: dict[str, str] = {}
    try:
        tree, parsed = incremental.assemble(sources, cache, checker, by_display, shas,
                                            since_ns)
        manifests = (incremental.manifests(sources, cache, checker, parsed, shas)
                     if keep_manifests else ())
    finally:
        cache.close()
    return _finish(paths, sources, path_findings, tree, manifests,
                   {} if keep_manifests and not keep_parsed else parsed)


class _Checker(NamedTuple):  # not a dataclass: cheaper to define (cache.py)
    """How this run checks the files whose content the cache cannot vouch for."""

    ignore_unknown: bool
    keep_parsed: bool
    workers: int | None
    keep_manifests: bool = False  # every parsed file's documents, from workers too

    def run(self, todo: list[SourceFile], cache: ValidationCache | None,
            ) -> tuple[list[FileReport], dict[str, tuple[Manifest, ...]]]:
        if not todo:
            return [], {}
        keep_here = self.keep_manifests or (
            self.keep_parsed and not _parallel(len(todo), self.workers))
        reports, new = [], []
        for r in _run_checks(todo, cache, self.ignore_unknown, keep_here, self.workers):
            reports.append(r)
            if cache is not None and not r.cached and _cacheable(r):
                # Encoded while the workers check the rest (issue 13); `put` only after
                # all are in, so that this run's own checks never answer each other.
                cache.encode_ahead(r.sha256, r.result)
                new.append(r)
        parsed = {r.path: r.manifests for r in reports if keep_here and not r.cached}
        if cache is not None:
            for r in new:
                cache.put(r.sha256, r.result)
        return reports, parsed


def _parallel(files: int, workers: int | None) -> int:
    """How many worker processes check `files` files (0: this process does)."""
    n_workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    return n_workers if n_workers > 1 and files >= PARALLEL_THRESHOLD else 0


def _run_checks(todo: list[SourceFile], cache: ValidationCache | None, ignore_unknown: bool,
                keep: bool, workers: int | None) -> Iterator[FileReport]:
    """Read, hash and (when the cache has no result for the content) check each file;
    in worker processes for many files, so the parent reads nothing itself."""
    from reconciler.tree.yamlsafe import MAX_ALIAS_NODES_PER_RUN, AliasBudget

    n_workers = _parallel(len(todo), workers)
    if n_workers:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        jobs = [(s, ignore_unknown, keep) for s in todo]
        # fork: workers inherit what this process imported. On a cold run each worker
        # imports the checks itself (~60 ms of CPU): importing them here first saves
        # that once but adds ~4 MiB to this process's peak RSS (issue 13: ≤ 100 MiB).
        with ProcessPoolExecutor(n_workers, mp_context=get_context("fork"),
                                 initializer=init_worker,
                                 initargs=(MAX_ALIAS_NODES_PER_RUN // n_workers,
                                           cache.reader_args() if cache else None)) as pool:
            yield from pool.map(_check_source, jobs, chunksize=64)
        return
    budget = AliasBudget.for_run()
    cached = cache.get if cache is not None else _no_cache
    for src in todo:
        yield _read_check(src, ignore_unknown, keep, cached, budget)


def _parse_source(src: SourceFile) -> tuple[str, str, tuple[Manifest, ...]]:
    loaded = load_bytes(read_source(src), src.display, _worker_budget)
    return src.display, loaded.sha256, loaded.manifests


def parse_sources(todo: list[SourceFile], workers: int | None,
                  ) -> Iterator[tuple[str, str, tuple[Manifest, ...]]]:
    """(display, sha256, documents) of files already validated: parsed only, no checks
    (their results are known), in worker processes for many files."""
    if not todo:
        return
    from reconciler.tree.yamlsafe import MAX_ALIAS_NODES_PER_RUN, AliasBudget

    n_workers = _parallel(len(todo), workers)
    if n_workers:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        with ProcessPoolExecutor(n_workers, mp_context=get_context("fork"),
                                 initializer=init_worker,
                                 initargs=(MAX_ALIAS_NODES_PER_RUN // n_workers, None)) as pool:
            yield from pool.map(_parse_source, todo, chunksize=64)
        return
    budget = AliasBudget.for_run()
    for src in todo:
        loaded = load_bytes(read_source(src), src.display, budget)
        yield src.display, loaded.sha256, loaded.manifests


def tree_result(reports: Sequence[FileReport], sources: Mapping[str, SourceFile],
                ) -> tuple[TreeResult, frozenset[Slot]]:
    """Per-file findings plus cross-file uniqueness, for one exact set of files; and the
    claims made more than once."""
    claim_count: Counter[Slot] = Counter()
    for r in reports:
        claim_count.update(r.result.slots())
    duplicated = frozenset(claim for claim, n in claim_count.items() if n > 1)
    objects = tuple((SourceRef(r.path, d), k) for r in reports for d, k in r.result.objects)
    return TreeResult(objects, tuple(assemble_findings(reports, duplicated, sources))), \
        duplicated


def assemble_findings(reports: Iterable[FileReport], duplicated: frozenset[Slot],
                      sources: Mapping[str, SourceFile]) -> list[Finding]:
    """The tree's findings from the files that can have any: those with findings of
    their own, those making a `duplicated` claim and those naming host paths."""
    reports = list(reports)
    findings: list[Finding] = []
    for r in reports:
        if r.result.findings:
            findings.extend(r.result.findings_for(r.path))
    if duplicated:
        # Only documents that share a claim can produce a uniqueness finding.
        involved = [ManifestFacts(c.key, SourceRef(r.path, c.doc), c.claims)
                    for r in reports for c in r.result.facts
                    if any((u.what, u.value) in duplicated for u in c.claims)]
        findings.extend(tree_findings(involved, sources))
    findings.extend(located(hostdisk.check_tree(host_facts(
        (r.path, c) for r in reports for c in r.result.facts)), sources))
    return findings


def host_facts(facts: Iterable[tuple[str, CachedFacts]]) -> list[ManifestFacts]:
    """The facts the hostDisk tree check needs: the Cluster and documents naming host paths."""
    return [ManifestFacts(c.key, SourceRef(path, c.doc), c.claims, c.host_paths)
            for path, c in facts if c.host_paths or c.key.kind == hostdisk.CLUSTER_KIND]


def _finish(paths: Sequence[str], sources: Sequence[SourceFile],
            path_findings: Sequence[Finding], tree: TreeResult,
            manifests: tuple[Manifest, ...],
            parsed: Mapping[str, tuple[Manifest, ...]]) -> ValidationReport:
    return ValidationReport(tuple(s.display for s in sources),
                            final_findings(paths, path_findings, tree.findings,
                                           bool(tree.objects)),
                            tree.objects, manifests, parsed,
                            frozenset(s.display for s in sources if s.stat is not None))


def final_findings(paths: Sequence[str], path_findings: Sequence[Finding],
                   tree_findings: Sequence[Finding], has_objects: bool) -> tuple[Finding, ...]:
    """What `validate` reports: the walk's and the tree's findings, sorted, and a tree
    without objects refused when nothing else is an error."""
    findings = [*path_findings, *tree_findings]
    if not has_objects and not any(f.severity == "error" for f in findings):
        findings.append(Finding(", ".join(paths), 0, 0, ".",
                                "no objects found: the tree holds no VirtualMachine or other "
                                "virtsync object; refusing to treat it as valid",
                                "tree.no-objects"))
    return tuple(sorted(set(findings)))


def tree_findings(facts: Sequence[ManifestFacts],
                  sources: Mapping[str, SourceFile]) -> list[Finding]:
    """Cross-file uniqueness; reads a file again only to locate a (rare) duplicate."""
    from reconciler.check import semantic

    return located(semantic.check_unique(facts, line_of_in(_text_reader(sources))), sources)


def _text_reader(sources: Mapping[str, SourceFile]) -> Callable[[str], str]:
    """A file's text by path, read once (only to locate rare cross-file findings)."""
    texts: dict[str, str] = {}

    def text_of(file: str) -> str:
        if file not in texts:
            src = sources.get(file)
            texts[file] = (read_source(src).decode("utf-8", errors="replace").lstrip("\ufeff")
                           if src is not None else "")
        return texts[file]

    return text_of


def located(issues: Iterable[tuple[SourceRef, Issue]],
            sources: Mapping[str, SourceFile]) -> list[Finding]:
    """Cross-file issues as findings; reads a file again only to locate one (rare)."""
    text_of = _text_reader(sources)
    return [_locate(ref.file, text_of(ref.file), ref.doc, issue) for ref, issue in issues]


def line_of_in(text_of: Callable[[str], str]) -> LineOf:
    """Where a uniqueness finding's first claim is, to name it (file:line) in the message."""
    def line_of(ref: SourceRef, path: JSONPath) -> int:
        # ruamel's round-trip parser only when a claim is named, not for every tree.
        from reconciler.tree.positions import locate

        return locate(text_of(ref.file), ref.doc, path)[0]

    return line_of


