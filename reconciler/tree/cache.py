"""Content-hash cache of per-file validation results, so an unchanged tree parses nothing.

One JSON file in the state directory. Entries are keyed by the file's sha256 and hold
only what cross-file checks and reporting need (object keys, findings, unique claims),
never bodies, so a 10,000-file cache loads in milliseconds. The whole cache is tied to a
`namespace` (virtsync version, schema and rule-code digest, options): change any of them
and every entry is ignored. A corrupt or foreign cache is ignored, never trusted: the
entries line carries its own sha256 and the file is plain JSON (nothing executable).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.core.fsutil import write_atomic
from reconciler.core.model import Finding, HostPath, HostPathKind, ObjectKey, SourceRef, UniqueClaim

FORMAT = "virtsync-validate-cache/3"


@dataclass(frozen=True)
class CachedFacts:
    doc: int
    key: ObjectKey
    claims: tuple[UniqueClaim, ...]
    host_paths: tuple[HostPath, ...] = ()


@dataclass(frozen=True)
class CachedFile:
    """A file's validation result with its path stripped (the same bytes may move)."""

    objects: tuple[tuple[int, ObjectKey], ...]
    findings: tuple[Finding, ...]  # file field is ignored; re-attached on use
    facts: tuple[CachedFacts, ...]
    documents: int

    def findings_for(self, display: str) -> tuple[Finding, ...]:
        return tuple(
            Finding(display, f.line, f.column, f.path, f.message, f.rule, f.severity)
            for f in self.findings
        )

    def source(self, display: str, doc: int) -> SourceRef:
        return SourceRef(display, doc)


def _encode(entry: CachedFile) -> list[Any]:
    return [
        [[d, k.kind, k.namespace, k.name] for d, k in entry.objects],
        [[f.line, f.column, f.path, f.message, f.rule, f.severity] for f in entry.findings],
        [
            [c.doc, c.key.kind, c.key.namespace, c.key.name,
             [[u.what, u.value, list(u.path)] for u in c.claims],
             [[h.what.value, h.value, list(h.path)] for h in c.host_paths]]
            for c in entry.facts
        ],
        entry.documents,
    ]


def _decode(raw: list[Any]) -> CachedFile:
    objects, findings, facts, documents = raw
    return CachedFile(
        objects=tuple((int(d), ObjectKey(k, ns, n)) for d, k, ns, n in objects),
        findings=tuple(Finding("", int(ln), int(col), p, m, r, s)
                       for ln, col, p, m, r, s in findings),
        facts=tuple(
            CachedFacts(int(d), ObjectKey(k, ns, n),
                        tuple(UniqueClaim(w, v, tuple(p)) for w, v, p in claims),
                        tuple(HostPath(HostPathKind(w), v, tuple(p))
                              for w, v, p in host_paths))
            for d, k, ns, n, claims, host_paths in facts
        ),
        documents=int(documents),
    )


@dataclass(frozen=True)
class TreeResult:
    """The assembled result for an exact set of (path, content) pairs."""

    objects: tuple[tuple[SourceRef, ObjectKey], ...]
    findings: tuple[Finding, ...]


# A file modified within this window of the cache write may share its cached mtime and
# size while holding new bytes (git's "racily clean" problem): always re-hash those.
RACY_WINDOW_NS = 2_000_000_000


class ValidationCache:
    """Load once, look up by sha256, remember new results, save atomically.

    Layout: a header line (format, namespace, checksums, write time), a tree line (stat
    index path → (mtime, size, inode, sha256) and the last assembled result), then the
    per-file entries. An unchanged tree is answered from the first two lines alone.
    """

    def __init__(self, path: Path, namespace: str) -> None:
        self.path = path
        self.namespace = namespace
        self._stats: dict[str, list[Any]] = {}
        self._tree: dict[str, Any] = {}
        self._body: bytes = b""
        self._raw: dict[str, Any] | None = None
        self._new: dict[str, CachedFile] = {}
        self._written_ns = 0
        self._load()

    def _load(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                header = json.loads(fh.readline())
                tree_line = fh.readline()
                body = fh.read()
            if (
                not isinstance(header, dict)
                or header.get("format") != FORMAT
                or header.get("namespace") != self.namespace
                or header.get("tree_sha256") != hashlib.sha256(tree_line).hexdigest()
                or header.get("sha256") != hashlib.sha256(body).hexdigest()
            ):
                return
            tree = json.loads(tree_line)
            self._stats = tree["stats"]
            self._tree = tree["result"]
            self._written_ns = int(header["written_ns"])
            self._body = body
        except (OSError, ValueError, UnicodeDecodeError, KeyError, TypeError):
            self._stats, self._tree, self._body = {}, {}, b""

    def _entries(self) -> dict[str, Any]:
        if self._raw is None:
            try:
                raw = json.loads(self._body) if self._body else {}
            except ValueError:
                raw = {}
            self._raw = raw if isinstance(raw, dict) else {}
        return self._raw

    def known_sha(self, display: str, stat: tuple[int, int, int]) -> str | None:
        """The cached sha256 of a file whose (mtime_ns, size, inode) are unchanged."""
        known = self._stats.get(display)
        if not known or tuple(known[:3]) != stat:
            return None
        if stat[0] >= self._written_ns - RACY_WINDOW_NS:
            return None
        sha = known[3]
        return sha if isinstance(sha, str) else None

    def tree_result(self, digest: str) -> TreeResult | None:
        if self._tree.get("digest") != digest:
            return None
        try:
            objects = tuple((SourceRef(f, int(d)), ObjectKey(k, ns, n))
                            for f, d, k, ns, n in self._tree["objects"])
            findings = tuple(Finding(f, int(ln), int(c), p, m, r, sev)
                             for f, ln, c, p, m, r, sev in self._tree["findings"])
        except (ValueError, TypeError, KeyError):
            return None
        return TreeResult(objects, findings)

    def get(self, sha256: str) -> CachedFile | None:
        hit = self._new.get(sha256)
        if hit is not None:
            return hit
        raw = self._entries().get(sha256)
        if raw is None:
            return None
        try:
            return _decode(raw)
        except (ValueError, TypeError):
            return None  # a damaged entry is a miss, never an answer

    def put(self, sha256: str, entry: CachedFile) -> None:
        self._new[sha256] = entry

    def save(self, files: Iterable[tuple[str, tuple[int, int, int] | None, str]],
             digest: str, result: TreeResult) -> None:
        """Write the stat index, the tree result and entries for the current files only."""
        files = list(files)
        stats = {d: [*st, sha] for d, st, sha in files if st is not None}
        tree_result = {
            "digest": digest,
            "objects": [[r.file, r.doc, k.kind, k.namespace, k.name] for r, k in result.objects],
            "findings": [[f.file, f.line, f.column, f.path, f.message, f.rule, f.severity]
                         for f in result.findings],
        }
        if not self._new and stats == self._stats and self._tree.get("digest") == digest:
            return  # nothing changed: an unchanged tree writes nothing
        keep = {sha for _, _, sha in files}
        old = self._entries()
        entries: dict[str, Any] = {h: old[h] for h in keep if h in old}
        entries.update({h: _encode(e) for h, e in self._new.items() if h in keep})
        body = json.dumps(entries, separators=(",", ":")).encode()
        tree_line = json.dumps({"stats": stats, "result": tree_result},
                               separators=(",", ":")).encode() + b"\n"
        header = json.dumps({
            "format": FORMAT, "namespace": self.namespace, "written_ns": time.time_ns(),
            "tree_sha256": hashlib.sha256(tree_line).hexdigest(),
            "sha256": hashlib.sha256(body).hexdigest(),
        }).encode()
        write_atomic(self.path, header + b"\n" + tree_line + body)
