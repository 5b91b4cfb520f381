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
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.model import Finding, ObjectKey, SourceRef, UniqueClaim

FORMAT = "virtsync-validate-cache/1"


@dataclass(frozen=True)
class CachedFacts:
    doc: int
    key: ObjectKey
    claims: tuple[UniqueClaim, ...]


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
             [[u.what, u.value, list(u.path)] for u in c.claims]]
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
                        tuple(UniqueClaim(w, v, tuple(p)) for w, v, p in claims))
            for d, k, ns, n, claims in facts
        ),
        documents=int(documents),
    )


class ValidationCache:
    """Load once, look up by sha256, remember new results, save atomically."""

    def __init__(self, path: Path, namespace: str) -> None:
        self.path = path
        self.namespace = namespace
        self._raw: dict[str, Any] = {}
        self._new: dict[str, CachedFile] = {}
        self._used: set[str] = set()
        self._load()

    def _load(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                header_line = fh.readline()
                body = fh.read()
            header = json.loads(header_line)
            if (
                not isinstance(header, dict)
                or header.get("format") != FORMAT
                or header.get("namespace") != self.namespace
                or header.get("sha256") != hashlib.sha256(body).hexdigest()
            ):
                return
            raw = json.loads(body)
            if isinstance(raw, dict):
                self._raw = raw
        except (OSError, ValueError, UnicodeDecodeError):
            self._raw = {}

    def get(self, sha256: str) -> CachedFile | None:
        hit = self._new.get(sha256)
        if hit is not None:
            return hit
        raw = self._raw.get(sha256)
        if raw is None:
            return None
        try:
            entry = _decode(raw)
        except (ValueError, TypeError):
            return None  # a damaged entry is a miss, never an answer
        self._used.add(sha256)
        return entry

    def put(self, sha256: str, entry: CachedFile) -> None:
        self._new[sha256] = entry

    def save(self, keep: Iterable[str]) -> None:
        """Write entries for the hashes in `keep` (the current tree); others age out."""
        keep_set = set(keep)
        if not self._new and keep_set == set(self._raw):
            return  # nothing changed: an unchanged tree writes nothing
        entries: dict[str, Any] = {h: self._raw[h] for h in keep_set if h in self._raw}
        entries.update({h: _encode(e) for h, e in self._new.items() if h in keep_set})
        body = json.dumps(entries, separators=(",", ":")).encode()
        header = json.dumps({"format": FORMAT, "namespace": self.namespace,
                             "sha256": hashlib.sha256(body).hexdigest()}).encode()
        write_atomic(self.path, header + b"\n" + body)


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same directory, fsync, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
