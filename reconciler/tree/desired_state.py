"""The desired tree kept in memory and updated file by file (for `virtsync watch`).

Per file: content digest → per-file validation result + manifests + a hash per manifest
body. A refresh re-reads only files whose stat (working tree) or blob id (git) changed
and re-validates only files whose content changed; cross-file uniqueness runs on the
small claim facts, counted incrementally. Whole-tree validity is still the rule: a
snapshot with any error finding is invalid and `watch` plans nothing from it (safety
rule 1), exactly as `load_desired` refuses such a tree.

Two sources: the working tree (`WorkdirTree`, refreshed from watchdog paths or a full
walk) and committed trees (`GitTree`: HEAD or a ref, never the working tree). Both are
read through `reconciler.tree.source` (`read_tree`, `open_tree`), whose `TreeSource`
protocol is all a caller needs: no caller tells the two apart.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.check import semantic
from reconciler.check.validate import (
    PARALLEL_THRESHOLD,
    check_bytes,
    host_facts,
    init_worker,
    line_of_in,
    worker_budget,
)
from reconciler.core import hostdisk
from reconciler.core.model import (
    Finding,
    HasFindings,
    Manifest,
    ManifestFacts,
    ObjectKey,
    SourceRef,
    format_path,
)
from reconciler.planning.revisions import with_revisions
from reconciler.tree.cache import CachedFile
from reconciler.tree.desired import Desired, body_hash, desired_hash, git_revision
from reconciler.tree.doccache import DocumentCache
from reconciler.tree.loader import (
    IGNORE_FILE,
    SKIP_DIRS,
    YAML_SUFFIXES,
    IgnoreRules,
    SourceFile,
    display_path,
    find_yaml_files,
    load_bytes,
    read_source,
)
from reconciler.tree.watchpoints import WatchPoint, names_a_ref, outside_git_dir

if TYPE_CHECKING:
    from reconciler.tree.yamlsafe import AliasBudget

# The parser, its alias budget and the worker pool are imported by a read that parses:
# a tree the cache answers whole needs none of them (issue 13).

Stat = tuple[int, int, int]


@dataclass(frozen=True)
class FileState:
    display: str
    digest: str  # sha256 of the bytes (working tree) or git blob id (git mode)
    result: CachedFile
    manifests: tuple[Manifest, ...]
    hashes: tuple[str, ...]  # body_hash of each manifest, same order
    stat: Stat | None = None


@dataclass(frozen=True)
class Snapshot(HasFindings):
    """The tree as last read: valid only without error findings."""

    findings: tuple[Finding, ...]
    by_key: Mapping[ObjectKey, Manifest]
    hashes: Mapping[ObjectKey, str]  # body hash per key: what changed between snapshots
    revision: str
    root: Path
    files: int
    # keys read with their secrets digested (WorkdirTree(digested=True): planning only)
    digested: frozenset[ObjectKey] = frozenset()
    # keys of the Cluster objects (the nodes), found without going over every key
    clusters: frozenset[ObjectKey] = frozenset()
    _whole: list[Desired] = field(default_factory=list, repr=False, compare=False)

    def desired(self, keys: Iterable[ObjectKey] | None = None) -> Desired:
        """The tree (or just `keys` of it) as `Desired`, in key order; the whole tree's
        with its content hash (computed once per snapshot, only when asked for)."""
        if keys is None:
            if not self._whole:
                manifests = with_revisions(sorted(self.by_key.values(), key=_order),
                                           self.by_key)
                # A VM whose revisionName was just pinned hashes anew; the rest are known.
                hashes = {m.key: self.hashes[m.key] if m is self.by_key[m.key]
                          else body_hash(m.body) for m in manifests}
                self._whole.append(Desired(manifests, self.revision,
                                           desired_hash(hashes.items()), self.root, hashes,
                                           self.digested))
            return self._whole[0]
        chosen = sorted((self.by_key[k] for k in set(keys) if k in self.by_key), key=_order)
        return Desired(with_revisions(chosen, self.by_key), self.revision, "", self.root,
                       digested=self.digested)


def _order(m: Manifest) -> tuple[str, str, str]:
    return (m.kind, m.namespace, m.name)  # ObjectKey order, without dataclass compares


def changed_keys(old: Mapping[ObjectKey, str], new: Mapping[ObjectKey, str]) -> set[ObjectKey]:
    """Keys added, removed or with a different body between two snapshots."""
    out = {k for k, h in new.items() if old.get(k) != h}
    out.update(k for k in old if k not in new)
    return out


# A file to read: display path, content digest, bytes, stat, and its validation result
# when the cache already has it (then the file is only parsed, not checked again).
Job = tuple[str, str, bytes, Stat | None, CachedFile | None]


def _check(job: Job, budget: AliasBudget | None = None) -> FileState:
    display, digest, content, stat, known = job
    if known is not None:
        manifests = load_bytes(content, display, budget or worker_budget()).manifests
        return FileState(display, digest, known, manifests,
                         tuple(body_hash(m.body) for m in manifests), stat)
    report = check_bytes(content, display, keep_manifests=True,
                         run_budget=budget or worker_budget())
    hashes = tuple(body_hash(m.body) for m in report.manifests)
    return FileState(display, digest, report.result, report.manifests, hashes, stat)


def check_files(jobs: Sequence[Job]) -> Iterator[FileState]:
    """Per-file checks, under one alias budget per read as `validate` has per run; in
    worker processes for a large cold load. Forking is safe only while this process has
    no other threads (before watchdog and libvirt start theirs)."""
    if not jobs:
        return
    from reconciler.tree.yamlsafe import MAX_ALIAS_NODES_PER_RUN, AliasBudget

    workers = min(2, os.cpu_count() or 1)
    if workers > 1 and len(jobs) >= PARALLEL_THRESHOLD and threading.active_count() == 1:
        # Imported here: a small tree (most commands) never pays for the pool.
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        with ProcessPoolExecutor(workers, mp_context=get_context("fork"),
                                 initializer=init_worker,
                                 initargs=(MAX_ALIAS_NODES_PER_RUN // workers,)) as pool:
            yield from pool.map(_check, jobs, chunksize=64)
        return
    budget = AliasBudget.for_run()
    for job in jobs:
        yield _check(job, budget)


class DesiredTree:
    """Per-file state plus the indexes that make a snapshot cheap."""

    # A read of just the changed paths can miss a file (an editor saving by rename), so
    # a deletion it implies waits for a full read; a commit is read whole (False).
    deletions_need_full_read = False

    def __init__(self, root: Path, label: str) -> None:
        self.root = root
        self.label = label  # how a tree-level finding names the tree
        self._files: dict[str, FileState] = {}
        self._claims: Counter[tuple[str, str]] = Counter()
        self._dups: set[tuple[str, str]] = set()  # claims made more than once
        self._dirty: set[ObjectKey] = set()  # keys of files re-checked since take_dirty()
        self._key_files: dict[ObjectKey, set[str]] = {}
        self._by_key: dict[ObjectKey, Manifest] = {}
        self._hashes: dict[ObjectKey, str] = {}
        self._noted: set[str] = set()  # files with any finding
        self._host_files: set[str] = set()  # files with a Cluster or a hostDisk path
        self._path_findings: tuple[Finding, ...] = ()
        self._digested: set[str] = set()  # files whose documents have secrets digested

    # -------------------------------------------------------------- maintenance

    def _put(self, state: FileState) -> None:
        self._digested.discard(state.display)
        old = self._files.get(state.display)
        if old is not None:
            self._unindex(old)
        self._files[state.display] = state
        self._index(state)

    def _drop(self, display: str) -> None:
        self._digested.discard(display)
        old = self._files.pop(display, None)
        if old is not None:
            self._unindex(old)

    def _index(self, s: FileState) -> None:
        for c in s.result.facts:
            for u in c.claims:
                slot = (u.what, u.value)
                self._claims[slot] += 1
                if self._claims[slot] > 1:
                    self._dups.add(slot)
        if s.result.findings:
            self._noted.add(s.display)
        if host_facts((s.display, c) for c in s.result.facts):
            self._host_files.add(s.display)
        for m in s.manifests:
            self._key_files.setdefault(m.key, set()).add(s.display)
            self._refresh_key(m.key)

    def _unindex(self, s: FileState) -> None:
        for c in s.result.facts:
            for u in c.claims:
                slot = (u.what, u.value)
                self._claims[slot] -= 1
                if self._claims[slot] < 2:
                    self._dups.discard(slot)
                if self._claims[slot] <= 0:
                    del self._claims[slot]
        self._noted.discard(s.display)
        self._host_files.discard(s.display)
        for m in s.manifests:
            files = self._key_files.get(m.key)
            if files is not None:
                files.discard(s.display)
                if not files:
                    del self._key_files[m.key]
            self._refresh_key(m.key)

    def take_dirty(self) -> set[ObjectKey]:
        """Keys declared by files added, changed or removed since the last call: the only
        keys whose desired body can have changed (cheaper than comparing every key)."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def _refresh_key(self, key: ObjectKey) -> None:
        self._dirty.add(key)
        files = self._key_files.get(key)
        if not files:
            self._by_key.pop(key, None)
            self._hashes.pop(key, None)
            return
        # A key in two files is a uniqueness error (the tree is invalid); the first file
        # in path order stands for it meanwhile, as the validator reports it.
        state = self._files[min(files)]
        for m, h in zip(state.manifests, state.hashes, strict=True):
            if m.key == key:
                self._by_key[key] = m
                self._hashes[key] = h
                return

    def digest_of(self, display: str) -> str | None:
        s = self._files.get(display)
        return s.digest if s is not None else None

    # -------------------------------------------------------------- reading

    def refresh(self, paths: Collection[str] | None = None) -> int:
        """Re-read the tree (`paths`: just what file events named, where that suffices);
        how many files were re-checked or removed."""
        raise NotImplementedError

    def watch_points(self) -> list[WatchPoint]:
        """Where file events can signal a change to this tree."""
        raise NotImplementedError

    def revision(self) -> str:
        return git_revision(self.root)

    def text_of(self, display: str) -> str:
        """The file's text, to locate a cross-file finding (rare: re-read on demand)."""
        raise NotImplementedError

    def snapshot(self) -> Snapshot:
        findings: list[Finding] = list(self._path_findings)
        for display in self._noted:
            findings.extend(self._files[display].result.findings_for(display))
        findings.extend(self._tree_findings())
        if not self._by_key and not any(f.severity == "error" for f in findings):
            findings.append(Finding(self.label, 0, 0, ".",
                                    "no objects found: the tree holds no VirtualMachine or "
                                    "other virtsync object; refusing to treat it as valid",
                                    "tree.no-objects"))
        digested = frozenset(m.key for d in self._digested for m in self._files[d].manifests)
        # A file holding a Cluster is one of the few host files (see `host_facts`).
        clusters = frozenset(c.key for d in self._host_files for c in self._files[d].result.facts
                             if c.key.kind == hostdisk.CLUSTER_KIND)
        return Snapshot(tuple(sorted(set(findings))), dict(self._by_key), dict(self._hashes),
                        self.revision(), self.root, len(self._files), digested, clusters=clusters)

    def _tree_findings(self) -> list[Finding]:
        duplicated = self._dups
        involved = [ManifestFacts(c.key, SourceRef(s.display, c.doc), c.claims)
                    for s in self._files.values() for c in s.result.facts
                    if any((u.what, u.value) in duplicated for u in c.claims)] \
            if duplicated else []
        host = host_facts((d, c) for d in sorted(self._host_files)
                          for c in self._files[d].result.facts)
        out: list[Finding] = []
        texts: dict[str, str] = {}

        def text_of(file: str) -> str:
            if file not in texts:
                texts[file] = self.text_of(file)
            return texts[file]

        findings = [*semantic.check_unique(involved, line_of_in(text_of)),
                    *hostdisk.check_tree(host)]
        if findings:
            # ruamel's round-trip parser, for positions only, only when there is a finding.
            from reconciler.tree.positions import locate
        for ref, issue in findings:
            line, col = locate(text_of(ref.file), ref.doc, issue.path)
            out.append(Finding(ref.file, line, col, format_path(issue.path), issue.message,
                               issue.rule))
        return out


def _stat(path: str | Path) -> Stat | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class WorkdirTree(DesiredTree):
    """The working tree under PATH (a folder or one file), as the loader walks it."""

    deletions_need_full_read = True

    def __init__(self, path: str, *, use_cache: bool = False, digested: bool = False) -> None:
        p = Path(path)
        self.given = path
        # The validation cache (shared with `virtsync validate`): a file whose content it
        # knows is not checked again, nor parsed when its documents are stored (issue 13).
        self.use_cache = use_cache
        # A plan (never an apply) may take a file holding a secret from the cache with
        # the secret digested, as backends store it, instead of parsing it (rule 10).
        self.digested = digested and use_cache
        self._cache: DocumentCache | None = None
        self._taken = 0  # files this refresh took from the cache
        # Only a whole read asks the cache: a file an event names was just saved, its new
        # content is not there, and a save → applied cycle must not pay for the database.
        self._whole_read = False
        self._rows: set[str] = set()  # contents whose documents' row the cache has
        self.is_file = p.is_file()
        # The folder holding PATH, as `apply PATH` always named it (its inventory's key).
        self.real_root = p.resolve() if not self.is_file else p.parent.resolve()
        self.shown_root = display_path(p)
        super().__init__(self.real_root, path)
        # Kept as given, made a Path only when read (text_of): one per file per full
        # read was a hot loop at 10k files (issue 13).
        self._absolute: dict[str, str | Path] = {}

    def refresh(self, paths: Collection[str] | None = None) -> int:
        count = self.refresh_paths(paths) if paths is not None else None
        return self.refresh_all() if count is None else count

    def watch_points(self) -> list[WatchPoint]:
        return [WatchPoint(self.real_root, not self.is_file, outside_git_dir)]

    def text_of(self, display: str) -> str:
        absolute = self._absolute.get(display)
        if absolute is None:
            return ""
        return read_source(SourceFile(display, str(Path(absolute)))).decode(
            "utf-8", errors="replace").lstrip("\ufeff")

    def refresh_all(self) -> int:
        """Walk the whole tree; returns how many files were (re)checked or removed."""
        self._whole_read = True
        try:
            return self._refresh_all()
        finally:
            self._whole_read = False

    def _refresh_all(self) -> int:
        sources, path_findings = find_yaml_files([self.given])
        self._path_findings = tuple(path_findings)
        seen = {s.display for s in sources}
        changed = 0
        for gone in [d for d in self._files if d not in seen]:
            self._drop(gone)
            self._absolute.pop(gone, None)
            changed += 1
        jobs: list[Job] = []
        for src in sources:
            self._absolute[src.display] = src.absolute
            job = self._job(src)
            if job is not None:
                jobs.append(job)
        return changed + self._run(jobs)

    def _run(self, jobs: list[Job]) -> int:
        """Check the files `jobs` name and remember the results; how many files changed
        (these and the ones taken from the cache)."""
        taken, self._taken = self._taken, 0
        cached = {job[1] for job in jobs if job[4] is not None}  # results the cache had
        for state in check_files(jobs):
            self._put(state)
            if self._cache is not None:
                self._cache.learn(state.digest,
                                  None if state.digest in cached else state.result,
                                  None if state.digest in self._rows
                                  else (state.manifests, state.hashes))
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        self._rows = set()
        return len(jobs) + taken

    def _job(self, src: SourceFile) -> Job | None:
        """The check to run for this file, None when its content is already known."""
        # The walk's own lstat of the file, taken before it is read as this one would be
        # (issue 13: one stat per file, not two); a file named directly or through a
        # link comes without one.
        st = src.stat if src.stat is not None else _stat(src.absolute)
        known = self._files.get(src.display)
        if known is not None and st is not None and known.stat == st:
            return None
        content = read_source(src)
        digest = hashlib.sha256(content).hexdigest()
        if known is not None and known.digest == digest:
            self._files[src.display] = FileState(known.display, known.digest, known.result,
                                                 known.manifests, known.hashes, st)
            return None
        if self._cache is None and self.use_cache and self._whole_read:
            self._cache = DocumentCache.open()
        if self._cache is not None:
            result = self._cache.result(digest)
            manifests, row = (self._cache.manifests(digest, src.display) if result
                              else (None, False))
            if row:
                self._rows.add(digest)
            hidden = (self._cache.digested(digest, src.display)
                      if self.digested and result is not None and manifests is None else None)
            if result is not None and hidden is not None:
                self._put(FileState(src.display, digest, result, *hidden, st))
                self._digested.add(src.display)
                self._taken += 1
                return None
            if result is not None and manifests is not None:
                self._put(FileState(src.display, digest, result, manifests,
                                    tuple(body_hash(m.body) for m in manifests), st))
                self._taken += 1
                return None
            return (src.display, digest, content, st, result)
        return (src.display, digest, content, st, None)

    def classify_event(self, absolute: str) -> str | None:
        """The display path a changed path stands for; '' when only a full walk can tell
        (a folder, a symbolic link); None when the tree cannot be affected."""
        try:
            rel = Path(os.path.abspath(absolute)).relative_to(self.real_root)
        except ValueError:
            return None
        parts = rel.parts
        if not parts:
            return ""
        if any(p in SKIP_DIRS for p in parts[:-1]) or parts[-1] in SKIP_DIRS:
            return None
        if self.is_file:
            return self.shown_root if rel.as_posix() == Path(self.given).name else None
        if rel.as_posix() == IGNORE_FILE:
            return ""  # what is left out changed: walk it all
        rules = IgnoreRules.read(self.real_root)
        if rules.patterns and (rules.ignores(rel.as_posix(), False) or any(
                rules.ignores("/".join(parts[:i]), True) for i in range(1, len(parts)))):
            return None
        path = self.real_root / rel
        if path.is_symlink() or path.is_dir():
            return ""
        name = parts[-1]
        if not name.endswith(YAML_SUFFIXES):
            # An unknown file vanishing may have been a folder: only a walk can tell.
            return "" if not path.exists() and "." not in name else None
        if name.startswith(".#"):  # an editor's lock file, never a spec
            return None
        return os.path.join(self.shown_root, *parts)

    def refresh_paths(self, absolutes: Iterable[str]) -> int | None:
        """Re-read just these paths; None when a full walk is needed instead."""
        todo: dict[str, Path] = {}
        for a in absolutes:
            display = self.classify_event(a)
            if display == "":
                return None
            if display is not None:
                todo[display] = Path(os.path.abspath(a))
        changed = 0
        jobs = []
        for display, absolute in sorted(todo.items()):
            if not os.path.lexists(absolute):
                if display in self._files:
                    self._drop(display)
                    self._absolute.pop(display, None)
                    changed += 1
                continue
            if not absolute.is_file():
                return None
            self._absolute[display] = absolute
            job = self._job(SourceFile(display, str(absolute)))
            if job is not None:
                jobs.append(job)
        return changed + self._run(jobs)


class GitTree(DesiredTree):
    """The committed tree under PATH at a ref (HEAD by default): what was committed,
    never a half-written working tree."""

    # gitsource is imported where a GitTree uses it: a plan of a working tree never
    # does (issue 13).
    def __init__(self, path: str, ref: str = "HEAD") -> None:
        from reconciler.tree.gitsource import relative_to_root, repo_root

        self.repo = repo_root(path)
        self.subpath = relative_to_root(self.repo, path)
        self.ref = ref
        p = Path(path).resolve()
        # The same root as `apply PATH` uses, so both share one inventory.
        root = p if p.is_dir() or not p.exists() else p.parent
        super().__init__(root, display_path(root))
        self.commit = ""

    def watch_points(self) -> list[WatchPoint]:
        from reconciler.tree.gitsource import git_dirs

        return [WatchPoint(d, True, names_a_ref) for d in git_dirs(self.repo)]

    def revision(self) -> str:
        return self.commit

    def text_of(self, display: str) -> str:
        s = self._files.get(display)
        if s is None:
            return ""
        from reconciler.tree.gitsource import read_blobs

        blob = read_blobs(self.repo, [s.digest]).get(s.digest, b"")
        return blob.decode("utf-8", errors="replace").lstrip("\ufeff")

    def head(self) -> str:
        from reconciler.tree.gitsource import resolve_commit

        return resolve_commit(self.repo, self.ref)

    def refresh(self, paths: Collection[str] | None = None) -> int:
        """Read the ref's commit; re-check only blobs that changed since the last one
        (which paths an event named does not matter: the ref says what changed)."""
        from reconciler.tree.gitsource import display_path as git_display_path
        from reconciler.tree.gitsource import list_tree, read_blobs

        commit = self.head()
        if commit == self.commit:
            return 0
        listing = list_tree(self.repo, commit, self.subpath)
        wanted = {git_display_path(self.repo, e.path): e for e in listing.entries}
        changed = 0
        for gone in [d for d in self._files if d not in wanted]:
            self._drop(gone)
            changed += 1
        new = {d: e for d, e in wanted.items() if self.digest_of(d) != e.sha}
        blobs = read_blobs(self.repo, (e.sha for e in new.values()))
        jobs: list[Job] = [(d, e.sha, blobs[e.sha], None, None) for d, e in sorted(new.items())]
        for state in check_files(jobs):
            self._put(state)
            changed += 1
        self.commit = commit
        return changed
