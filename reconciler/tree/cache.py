"""Content-hash cache of per-file validation results, kept incrementally in SQLite.

One SQLite database (WAL) in the state directory, one row per file and per result, so a
one-file edit reads and writes that file's rows, not the whole cache:

- `results`: per-file validation result keyed by (namespace, sha256): what cross-file
  checks and reporting need (object keys, findings, unique claims), never bodies.
- `files`: per scope (namespace + working directory + the paths asked for) and display
  path: stat (mtime, size, inode) → sha256, plus the file's object keys and flags, so an
  unchanged file is not read and an unchanged tree decodes no result at all.
- `claims`: each file's unique claims (name, UUID, MAC...), indexed, so a change learns
  whether its claims are shared by looking up just those claims. Keyed by the scope's
  integer id (`scopes`), not its 64-character text: a cold tree writes ~70,000 rows.
- `manifests`: the parsed documents of a content (host-mode plan and apply need the
  bodies), written only by runs that asked for them, and never for a content holding a
  secret (safety rule 10).
- `trees`: per scope, the digest of the last assembled tree, its findings, the claims
  made more than once, and (once every file has settled) the digest of every file's
  stat, which answers an unchanged tree without reading the rest (tree/settled.py).
- `buckets`: per scope, the files split by a hash of their path (settled.bucket_of):
  each bucket's settled stats digest and content digest, so a run that finds a few
  buckets changed reads only their `files` rows (`partial`, check/incremental.py).

The `namespace` (virtsync version, schema and rule-code digest, options) is part of
every key: change any of them and nothing cached is used. A damaged or foreign database
is deleted and rebuilt, a locked one is skipped; neither is ever fatal nor trusted (the
rows are plain JSON and text, nothing executable).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, overload

from reconciler.core.model import (
    Finding,
    HostPath,
    HostPathKind,
    Manifest,
    ObjectKey,
    SourceRef,
    UniqueClaim,
)
from reconciler.core.sensitive import digest_sensitive
from reconciler.tree.settled import DB_NAME as DB_NAME
from reconciler.tree.settled import bucket_of

# Bump on any change of the tables or of a row's encoding.
FORMAT = 8
# Scopes (trees validated from some directory) kept; the least recently used go first.
MAX_SCOPES = 16
# How long a writer waits for another one before giving up its (optional) write.
BUSY_TIMEOUT_MS = 2000
# Every this many writes of a scope, results no file refers to any more are dropped.
PRUNE_EVERY = 64

_CLAIMS_INDEXES = (
    "CREATE INDEX IF NOT EXISTS claims_slot ON claims(sid, what, value)",
    "CREATE INDEX IF NOT EXISTS claims_path ON claims(sid, path)",
)
_TABLES = (
    "CREATE TABLE IF NOT EXISTS results(namespace TEXT NOT NULL, sha256 TEXT NOT NULL,"
    " result TEXT NOT NULL, PRIMARY KEY(namespace, sha256)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS files(scope TEXT NOT NULL, path TEXT NOT NULL,"
    " mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL, ino INTEGER NOT NULL,"
    " sha256 TEXT NOT NULL, seen_ns INTEGER NOT NULL, flags INTEGER NOT NULL,"
    " objects TEXT NOT NULL, bucket INTEGER NOT NULL, PRIMARY KEY(scope, path)) WITHOUT ROWID",
    # Named in the queries (INDEXED BY): without statistics the planner scans the scope.
    "CREATE INDEX IF NOT EXISTS files_bucket ON files(scope, bucket)",
    "CREATE INDEX IF NOT EXISTS files_flagged ON files(scope) WHERE flags != 0",
    "CREATE TABLE IF NOT EXISTS buckets(scope TEXT NOT NULL, bucket INTEGER NOT NULL,"
    " stats TEXT NOT NULL, content TEXT NOT NULL, PRIMARY KEY(scope, bucket)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS scopes(id INTEGER PRIMARY KEY, scope TEXT NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS claims(sid INTEGER NOT NULL, what TEXT NOT NULL,"
    " value TEXT NOT NULL, path TEXT NOT NULL)",
    *_CLAIMS_INDEXES,
    "CREATE TABLE IF NOT EXISTS manifests(namespace TEXT NOT NULL, sha256 TEXT NOT NULL,"
    " manifests TEXT NOT NULL, PRIMARY KEY(namespace, sha256)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS trees(scope TEXT PRIMARY KEY, digest TEXT NOT NULL,"
    " findings TEXT NOT NULL, dups TEXT NOT NULL, objects INTEGER NOT NULL,"
    " used_ns INTEGER NOT NULL, generation INTEGER NOT NULL, stats TEXT NOT NULL)"
    " WITHOUT ROWID",
)

# files.flags: which files the tree assembly must look at even when unchanged.
NOTED = 1  # the file has findings of its own
HOST = 2  # a Cluster or a hostDisk path (the hostDisk tree check reads these)

Slot = tuple[str, str]  # a unique claim: (what, value)
Stat = tuple[int, int, int]
Bucket = tuple[str, str]
# The records below are NamedTuples, not frozen dataclasses: each dataclass costs ~0.5 ms
# of generated code at import, which every run that checks a file pays (issue 13).  # (settled stats digest or '', content digest)


class CachedFacts(NamedTuple):
    doc: int
    key: ObjectKey
    claims: tuple[UniqueClaim, ...]
    host_paths: tuple[HostPath, ...] = ()


class CachedFile(NamedTuple):
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

    def slots(self) -> list[Slot]:
        return [(u.what, u.value) for c in self.facts for u in c.claims]


def encode(entry: CachedFile) -> str:
    return encode_row(entry)[0]


def decode(text: str) -> CachedFile:
    objects, findings, facts, documents = json.loads(text)
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


def encode_manifests(manifests: Sequence[Manifest]) -> str | None:
    """The documents as JSON; None when a document holds a secret (rule 10: no secret in
    any state file; cloud-init userData is one) or when JSON would not give them back
    exactly (a non-string mapping key, say): such a file is parsed again instead."""
    if any(digest_sensitive(m.body) != m.body for m in manifests):
        return None
    rows = [[m.api_version, m.kind, m.namespace, m.name, m.source.doc, m.body]
            for m in manifests]
    try:
        text = json.dumps(rows, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return None
    return text if json.loads(text) == rows else None


# The `manifests` row of a content whose documents are not stored (a secret, rule 10).
NOT_STORED = "-"
# ... or stored with every secret digested (see find_digested), after this prefix.
DIGESTED = "#"


def decode_manifests(text: str, display: str) -> tuple[Manifest, ...]:
    return tuple(Manifest(api, kind, ns, name, body, SourceRef(display, int(doc)))
                 for api, kind, ns, name, doc, body in json.loads(text))


def flags_of(entry: CachedFile, host: bool) -> int:
    return (NOTED if entry.findings else 0) | (HOST if host else 0)


# json.dumps(x, separators=...) in one reused encoder: dumps makes a new one per call.
_compact = json.JSONEncoder(separators=(",", ":")).encode


def objects_text(entry: CachedFile) -> str:
    return _compact([[d, k.kind, k.namespace, k.name] for d, k in entry.objects])


def encode_row(entry: CachedFile) -> tuple[str, str]:
    """(encode(entry), objects_text(entry)), the objects encoded once: the result's
    first element is the objects' text (a cold run writes both for every file)."""
    objects = objects_text(entry)
    rest = _compact([
        [[f.line, f.column, f.path, f.message, f.rule, f.severity] for f in entry.findings],
        [
            [c.doc, c.key.kind, c.key.namespace, c.key.name,
             [[u.what, u.value, list(u.path)] for u in c.claims],
             [[h.what.value, h.value, list(h.path)] for h in c.host_paths]]
            for c in entry.facts
        ],
        entry.documents,
    ])
    return "[" + objects + "," + rest[1:], objects


class Objects(Sequence[tuple[SourceRef, ObjectKey]]):
    """A tree's (source, key) pairs in path order, decoded only when first looked at:
    `validate` needs only how many there are."""

    def __init__(self, rows: list[tuple[str, str]], count: int) -> None:
        self._rows = rows  # (display path, objects_text), sorted by path
        self._count = count
        self._items: tuple[tuple[SourceRef, ObjectKey], ...] | None = None

    def _all(self) -> tuple[tuple[SourceRef, ObjectKey], ...]:
        if self._items is None:
            # One JSON document for every file's list: one decoder call, not 10,000.
            lists = json.loads("[" + ",".join(text for _, text in self._rows) + "]")
            self._items = tuple((SourceRef(path, int(d)), ObjectKey(k, ns, n))
                                for (path, _), objects in zip(self._rows, lists, strict=True)
                                for d, k, ns, n in objects)
            self._rows = []
        return self._items

    def __len__(self) -> int:
        return self._count if self._items is None else len(self._items)

    @overload
    def __getitem__(self, i: int) -> tuple[SourceRef, ObjectKey]: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[tuple[SourceRef, ObjectKey]]: ...

    def __getitem__(self, i: int | slice) -> Any:
        return self._all()[i]

    def __iter__(self) -> Iterator[tuple[SourceRef, ObjectKey]]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return tuple(self) == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class TreeResult(NamedTuple):
    """The assembled result for an exact set of (path, content) pairs."""

    objects: Sequence[tuple[SourceRef, ObjectKey]]
    findings: tuple[Finding, ...]


class FileRow(NamedTuple):
    """A file as the last run of this scope saw it (a tuple: 10,000 are made per warm
    run, at a third of a frozen dataclass's cost)."""

    stat: Stat
    sha256: str
    seen_ns: int
    flags: int
    objects: str


class StoredTree(NamedTuple):
    digest: str
    findings: tuple[Finding, ...]
    dups: frozenset[Slot]
    objects: int
    generation: int
    stats: str = ""  # settled.stats_digest of the files, '' until every one has settled


class FileUpdate(NamedTuple):
    """What a run learnt about one file of the scope: written in one transaction."""

    path: str
    stat: Stat | None
    sha256: str
    result: CachedFile | None  # None: the stat changed, the content did not
    host: bool = False


# A partial read that finds more buckets changed than this reads the whole index instead.
PARTIAL_MAX = 32

# A file modified within this window of the row's write may share its cached mtime and
# size while holding new bytes (git's "racily clean" problem): always re-hash those.
RACY_WINDOW_NS = 2_000_000_000


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, FORMAT):
            raise sqlite3.DatabaseError(f"cache format {version}")
        if version == 0:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _TABLES:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={FORMAT}")
            conn.execute("COMMIT")
        conn.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Another process holds the lock (as opposed to a database that cannot work)."""
    return "locked" in str(exc) or "busy" in str(exc)


def _remove(path: Path) -> None:
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        try:
            os.unlink(path.with_name(name))
        except OSError:
            pass


def open_db(path: Path) -> sqlite3.Connection | None:
    """The cache database; a damaged or foreign one is removed and made anew. None when
    even that fails (a read-only state dir): the run goes on uncached."""
    for attempt in range(2):
        try:
            return _connect(path)
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                return None  # another process is creating it: go on without
            if attempt:
                return None
            _remove(path)
        except (sqlite3.DatabaseError, OSError):
            if attempt:
                return None
            _remove(path)
    return None


def lookup(db: sqlite3.Connection, namespace: str, sha256: str) -> CachedFile | None:
    """The cached result for this content; any damage or lock is a miss."""
    try:
        row = db.execute("SELECT result FROM results WHERE namespace=? AND sha256=?",
                         (namespace, sha256)).fetchone()
        return decode(row[0]) if row is not None else None
    except (sqlite3.Error, ValueError, TypeError, KeyError):
        return None


def open_reader(path: Path) -> sqlite3.Connection | None:
    """A read-only connection for a worker process (never one inherited by fork)."""
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error:
        return None


class ValidationCache:
    """One run's view of the cache for one scope: read in one snapshot, write once."""

    def __init__(self, path: Path, namespace: str, scope: str,
                 buckets: Mapping[int, str] | None = None) -> None:
        """`buckets`: each bucket's stats digest from this run's walk (settled.bucket_stats)
        for a partial read: only the rows of buckets whose stored stats digest differs
        (or was not settled) are read (`examined`), the others are vouched for by it.
        `partial` says whether that worked; else nothing was read (read in full)."""
        self.path = path
        self.namespace = namespace
        self.scope = scope
        self._db = open_db(path)
        self._new: dict[str, CachedFile] = {}
        self.rows: dict[str, FileRow] = {}
        self.tree: StoredTree | None = None
        self.buckets: dict[int, Bucket] = {}  # as stored
        self.examined: frozenset[int] | None = None  # None: every row was read
        self._last_row: tuple[str, tuple[str] | None] | None = None
        # sha256 → encode_row of `_new`, split: the results' text is dropped once written.
        self._texts: dict[str, str] = {}
        self._objects: dict[str, str] = {}
        self.partial = False
        if buckets is None:
            self._read_index()
        else:
            self.partial = self._read_partial(buckets)

    def _fail(self) -> None:
        """A damaged database found mid-run: forget it (rebuilt by the next run)."""
        if self._db is not None:
            self._db.close()
            self._db = None
            _remove(self.path)
        self.rows, self.tree = {}, None

    def _read_index(self) -> None:
        if self._db is None:
            return
        try:
            # One read transaction: the index and the tree row from the same snapshot.
            self._db.execute("BEGIN")
            rows = self._db.execute(
                "SELECT path, mtime_ns, size, ino, sha256, seen_ns, flags, objects FROM files"
                " WHERE scope=?", (self.scope,)).fetchall()
            tree = self._tree_row()
            self._db.execute("COMMIT")
            self.rows = {p: FileRow((m, s, i), sha, seen, fl, obj)
                         for p, m, s, i, sha, seen, fl, obj in rows}
            self.tree = tree
        except sqlite3.OperationalError:
            self.rows, self.tree = {}, None  # locked: this run is uncached
        except (sqlite3.DatabaseError, ValueError, TypeError):
            self._fail()

    def _read_partial(self, current: Mapping[int, str]) -> bool:
        if self._db is None:
            return False
        try:
            self._db.execute("BEGIN")  # one snapshot, as _read_index
            tree = self._tree_row()
            stored = {b: (st, c) for b, st, c in self._db.execute(
                "SELECT bucket, stats, content FROM buckets WHERE scope=?", (self.scope,))}
            examined = frozenset(
                {b for b, st in current.items() if not st or stored.get(b, ("",))[0] != st}
                | (stored.keys() - current.keys()))
            if tree is None or not stored or len(examined) > PARTIAL_MAX:
                self._db.execute("COMMIT")
                return False
            rows = [r for b in sorted(examined) for r in self._db.execute(
                "SELECT path, mtime_ns, size, ino, sha256, seen_ns, flags, objects FROM files"
                " INDEXED BY files_bucket WHERE scope=? AND bucket=?", (self.scope, b))]
            self._db.execute("COMMIT")
        except (sqlite3.Error, ValueError, TypeError):
            # Locked or damaged: the full read decides (uncached, or rebuilt).
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            return False
        self.rows = {p: FileRow((m, s, i), sha, seen, fl, obj)
                     for p, m, s, i, sha, seen, fl, obj in rows}
        self.tree, self.buckets, self.examined = tree, stored, examined
        return True

    def _tree_row(self) -> StoredTree | None:
        assert self._db is not None
        tree = self._db.execute(
            "SELECT digest, findings, dups, objects, generation, stats FROM trees"
            " WHERE scope=?", (self.scope,)).fetchone()
        if tree is None:
            return None
        digest, findings, dups, objects, generation, stats = tree
        return StoredTree(
            digest,
            tuple(Finding(f, int(ln), int(c), p, m, r, sev)
                  for f, ln, c, p, m, r, sev in json.loads(findings)),
            frozenset((w, v) for w, v in json.loads(dups)),
            int(objects), int(generation), str(stats))

    def _sid(self) -> int | None:
        """This scope's id in `claims` (None: it has no rows yet)."""
        assert self._db is not None
        row = self._db.execute("SELECT id FROM scopes WHERE scope=?", (self.scope,)).fetchone()
        return int(row[0]) if row is not None else None

    def flagged_elsewhere(self) -> dict[str, str]:
        """Files with a flag (findings of their own, host paths) in the buckets a partial
        read vouched for: path → content sha256. Empty after a full read (`rows` has
        them all)."""
        if self.examined is None or self._db is None:
            return {}
        return {p: sha for p, sha, b in self._db.execute(
            "SELECT path, sha256, bucket FROM files INDEXED BY files_flagged"
            " WHERE scope=? AND flags != 0",
            (self.scope,)) if b not in self.examined}

    def stored_sha(self, path: str) -> str | None:
        """The stored content sha256 of a file in a bucket a partial read vouched for."""
        if self._db is None:
            return None
        row = self._db.execute("SELECT sha256 FROM files WHERE scope=? AND path=?",
                               (self.scope, path)).fetchone()
        return str(row[0]) if row is not None else None

    def known_sha(self, display: str, stat: Stat) -> str | None:
        """The cached sha256 of a file whose (mtime_ns, size, inode) are unchanged."""
        row = self.rows.get(display)
        if row is None or row.stat != stat or stat[0] >= row.seen_ns - RACY_WINDOW_NS:
            return None
        return row.sha256

    def objects(self, paths: Iterable[str], fresh: Mapping[str, CachedFile],
                count: int) -> Objects:
        rows = [(p, objects_text(fresh[p]) if p in fresh else self.rows[p].objects)
                for p in sorted(paths)]
        return Objects(rows, count)

    def get(self, sha256: str) -> CachedFile | None:
        hit = self._new.get(sha256)
        if hit is not None or self._db is None:
            return hit
        return lookup(self._db, self.namespace, sha256)

    def put(self, sha256: str, entry: CachedFile) -> None:
        self._new[sha256] = entry

    def encode_ahead(self, sha256: str, entry: CachedFile) -> None:
        """Encode the row of a result about to be `put`: called as the workers' results
        arrive, while they check the rest, so the parent's serial tail need not (issue 13)."""
        if self._db is not None and sha256 not in self._objects:
            self._texts[sha256], self._objects[sha256] = encode_row(entry)

    def get_manifests(self, sha256: str, display: str) -> tuple[Manifest, ...] | None:
        return self.find_manifests(sha256, display)[0]

    def find_manifests(self, sha256: str, display: str,
                       ) -> tuple[tuple[Manifest, ...] | None, bool]:
        """The stored documents of a content, and whether it has a row at all (a content
        holding a secret has a row without documents: parse it again, never store it)."""
        if self._db is None:
            return None, False
        try:
            row = self._manifests_row(sha256)
            if row is None or row[0] == NOT_STORED or row[0].startswith(DIGESTED):
                return None, row is not None
            return decode_manifests(row[0], display), True
        except (sqlite3.Error, ValueError, TypeError, KeyError):
            return None, False  # damaged or locked: parse the file instead

    def _manifests_row(self, sha256: str) -> tuple[str] | None:
        """The `manifests` row of a content. The desired-state library asks find_manifests,
        then find_digested, for the same content: the second is answered from the first
        query (issue 13). Only the last row is kept, and only until a save."""
        if self._last_row is not None and self._last_row[0] == sha256:
            return self._last_row[1]
        assert self._db is not None
        row: tuple[str] | None = self._db.execute(
            "SELECT manifests FROM manifests WHERE namespace=? AND sha256=?",
            (self.namespace, sha256)).fetchone()
        self._last_row = (sha256, row)
        return row

    def save_manifests(self, entries: Mapping[str, Sequence[Manifest]]) -> None:
        """Content-addressed rows: written in their own transaction, never in the way.
        A content whose documents cannot be stored gets a row saying so, so that no later
        run tries again."""
        self._last_row = None  # rows change: ask again
        rows = [(self.namespace, sha, text if (text := encode_manifests(ms)) is not None
                 else NOT_STORED) for sha, ms in sorted(entries.items())]  # key order: _write
        if self._db is None or not rows:
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR IGNORE INTO manifests VALUES(?,?,?)", rows)
            self._db.execute("COMMIT")
        except sqlite3.Error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")

    def save_results(self) -> None:
        """The results `put` this run, in their own transaction, for a reader that keeps
        no tree of its own here (the desired-state library); never in the way."""
        rows = [(self.namespace, sha, self._text(sha)) for sha in sorted(self._new)]
        if self._db is None or not rows:
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR IGNORE INTO results VALUES(?,?,?)", rows)
            self._db.execute("COMMIT")
        except sqlite3.Error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        self._new.clear()
        self._texts.clear()
        self._objects.clear()

    def find_digested(self, sha256: str, display: str,
                      ) -> tuple[tuple[Manifest, ...], tuple[str, ...]] | None:
        """The documents of a content holding a secret, every secret replaced by its
        digest (what backends store, rule 10), with each raw body's hash; None: none."""
        if self._db is None:
            return None
        try:
            row = self._manifests_row(sha256)
            if row is None or not row[0].startswith(DIGESTED):
                return None
            docs = json.loads(row[0][len(DIGESTED):])
            return (tuple(Manifest(api, kind, ns, name, body, SourceRef(display, int(doc)))
                          for api, kind, ns, name, doc, body, _ in docs),
                    tuple(str(d[6]) for d in docs))
        except (sqlite3.Error, ValueError, TypeError, KeyError, IndexError):
            return None

    def save_digested(self, entries: Mapping[str, tuple[Sequence[Manifest], Sequence[str]]],
                      ) -> None:
        """Rows of `find_digested`: (documents whose secrets are digested already, the
        raw bodies' hashes) per content. They replace a row that only said "not stored"."""
        self._last_row = None  # rows change: ask again
        rows = [(self.namespace, sha, DIGESTED + json.dumps(
                    [[m.api_version, m.kind, m.namespace, m.name, m.source.doc, m.body, h]
                     for m, h in zip(ms, hs, strict=True)], separators=(",", ":")))
                for sha, (ms, hs) in sorted(entries.items())]  # key order: see _write
        if self._db is None or not rows:
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR REPLACE INTO manifests VALUES(?,?,?)", rows)
            self._db.execute("COMMIT")
        except sqlite3.Error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")

    def slot_counts(self, slots: Iterable[Slot]) -> dict[Slot, int]:
        """How many claims the stored tree has for each of `slots` (an index lookup each)."""
        out: dict[Slot, int] = {}
        if self._db is None:
            return out
        sid = self._sid()
        for slot in set(slots):
            out[slot] = self._db.execute(
                "SELECT COUNT(*) FROM claims WHERE sid=? AND what=? AND value=?",
                (sid, *slot)).fetchone()[0]
        return out

    def claims_of(self, paths: Iterable[str]) -> list[Slot]:
        """The claims the stored tree has from `paths` (their previous content)."""
        if self._db is None:
            return []
        sid = self._sid()
        return [(w, v) for p in paths for w, v in self._db.execute(
            "SELECT what, value FROM claims WHERE sid=? AND path=?", (sid, p))]

    def slot_paths(self, slots: Iterable[Slot]) -> set[str]:
        """The stored tree's files that make any of `slots`."""
        out: set[str] = set()
        if self._db is None:
            return out
        sid = self._sid()
        for slot in set(slots):
            out.update(p for (p,) in self._db.execute(
                "SELECT path FROM claims WHERE sid=? AND what=? AND value=?",
                (sid, *slot)))
        return out

    def save(self, updates: Sequence[FileUpdate], removed: Iterable[str], digest: str,
             tree: StoredTree | None, stats: str = "",
             buckets: Mapping[int, Bucket] | None = None) -> None:
        """Write what changed, in one transaction; skipped when another process changed
        this scope since it was read (its rows are as good as ours) or holds the lock.
        `stats`: the files' settled stats digest ('' : not all settled); with `tree`
        None it is stored only for the unchanged tree read (the caller checked that).
        `buckets`: every bucket's row after a full read, the examined ones' after a
        partial read; written with the rows they vouch for, never without them."""
        if self._db is None:
            return
        removed = list(removed)
        buckets = dict(buckets or {})
        new_stats = tree is None and stats != "" and self.tree is not None \
            and self.tree.stats != stats
        new_buckets = self.examined is not None and any(
            self.buckets.get(b) != buckets.get(b) for b in self.examined)
        if not updates and not removed and not new_stats and not new_buckets \
                and (tree is None or self.tree == tree):
            return  # an unchanged tree writes nothing
        try:
            self._write(updates, removed, digest, tree, stats, buckets)
        except sqlite3.OperationalError as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if not _busy(exc):
                self._fail()  # not a lock: a write that can never succeed, rebuild
        except sqlite3.DatabaseError:
            self._fail()

    def _write(self, updates: Sequence[FileUpdate], removed: list[str], digest: str,
               tree: StoredTree | None, stats: str, buckets: Mapping[int, Bucket]) -> None:
        db = self._db
        assert db is not None
        now = time.time_ns()
        db.execute("BEGIN IMMEDIATE")
        row = db.execute("SELECT generation FROM trees WHERE scope=?", (self.scope,)).fetchone()
        if (row[0] if row else None) != (self.tree.generation if self.tree else None):
            db.execute("ROLLBACK")
            return
        # In key order: the rows append to the table's b-tree instead of splitting pages
        # at random (a cold run: ~3× less CPU for this insert, a smaller file; issue 13).
        db.executemany("INSERT OR IGNORE INTO results VALUES(?,?,?)",
                       [(self.namespace, sha, self._text(sha)) for sha in sorted(self._new)])
        self._texts.clear()  # ~5 MB of text no longer needed (peak RSS, issue 13)
        db.execute("INSERT OR IGNORE INTO scopes(scope) VALUES(?)", (self.scope,))
        sid = self._sid()
        gone = [*removed, *(u.path for u in updates if u.result is not None)]
        db.executemany("DELETE FROM claims WHERE sid=? AND path=?", [(sid, p) for p in gone])
        db.executemany("DELETE FROM files WHERE scope=? AND path=?",
                       [(self.scope, p) for p in removed])
        claims = [(sid, w, v, u.path) for u in updates if u.result is not None
                  for w, v in u.result.slots()]
        # Into an empty table (a new cache), the indexes are built after the rows: one
        # sort each instead of 70,000 b-tree inserts (issue 13).
        cold = bool(claims) and db.execute("SELECT 1 FROM claims LIMIT 1").fetchone() is None
        if cold:
            db.execute("DROP INDEX IF EXISTS claims_slot")
            db.execute("DROP INDEX IF EXISTS claims_path")
        db.executemany("INSERT INTO claims VALUES(?,?,?,?)", claims)
        for statement in _CLAIMS_INDEXES if cold else ():
            db.execute(statement)
        db.executemany("INSERT OR REPLACE INTO files VALUES(?,?,?,?,?,?,?,?,?,?)", [
            (self.scope, u.path, *(u.stat or (0, -1, 0)), u.sha256, now,
             *self._derived(u), bucket_of(u.path)) for u in updates])
        if self.examined is None:
            db.execute("DELETE FROM buckets WHERE scope=?", (self.scope,))
        else:
            db.executemany("DELETE FROM buckets WHERE scope=? AND bucket=?",
                           [(self.scope, b) for b in self.examined])
        db.executemany("INSERT INTO buckets VALUES(?,?,?,?)",
                       [(self.scope, b, st, c) for b, (st, c) in sorted(buckets.items())])
        if tree is None and stats:
            db.execute("UPDATE trees SET stats=? WHERE scope=?", (stats, self.scope))
        if tree is not None:
            db.execute("INSERT OR REPLACE INTO trees VALUES(?,?,?,?,?,?,?,?)", (
                self.scope, digest,
                json.dumps([[f.file, f.line, f.column, f.path, f.message, f.rule, f.severity]
                            for f in tree.findings], separators=(",", ":")),
                json.dumps(sorted(tree.dups), separators=(",", ":")), tree.objects, now,
                (self.tree.generation + 1) if self.tree else 1, stats))
            if self.tree is None or (self.tree.generation + 1) % PRUNE_EVERY == 0:
                self._forget_old_scopes(db)
        db.execute("COMMIT")

    def _text(self, sha256: str) -> str:
        """The `results` row of a result `put` this run."""
        text = self._texts.get(sha256)
        return text if text is not None else encode(self._new[sha256])

    def _derived(self, u: FileUpdate) -> tuple[int, str]:
        if u.result is not None:
            text = self._objects.get(u.sha256)
            return flags_of(u.result, u.host), text if text is not None else objects_text(u.result)
        old = self.rows[u.path]
        return old.flags, old.objects

    def _forget_old_scopes(self, db: sqlite3.Connection) -> None:
        """A new scope: drop the least recently used beyond MAX_SCOPES, and results no
        file refers to any more."""
        stale = [s for (s,) in db.execute(
            "SELECT scope FROM trees ORDER BY used_ns DESC LIMIT -1 OFFSET ?", (MAX_SCOPES,))]
        db.executemany("DELETE FROM claims WHERE sid IN (SELECT id FROM scopes WHERE scope=?)",
                       [(s,) for s in stale])
        for table in ("trees", "files", "buckets", "scopes"):
            db.executemany(f"DELETE FROM {table} WHERE scope=?", [(s,) for s in stale])
        for table in ("results", "manifests"):
            db.execute(f"DELETE FROM {table} WHERE sha256 NOT IN (SELECT sha256 FROM files)")

    def reader_args(self) -> tuple[Path, str] | None:
        """What a worker process needs to open its own reader (None: no cache, or no
        result stored for this namespace: a cold run's workers would only miss, one
        query per file; issue 13)."""
        if self._db is None:
            return None
        try:
            stored = self._db.execute("SELECT 1 FROM results WHERE namespace=? LIMIT 1",
                                      (self.namespace,)).fetchone()
        except sqlite3.Error:
            return None  # damaged or locked: a worker's lookups would miss as well
        return (self.path, self.namespace) if stored is not None else None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
