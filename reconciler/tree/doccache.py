"""The validation cache as the desired-state library reads it: by content only.

A file whose bytes `virtsync validate` (or an earlier plan, apply or watch) already
checked is not checked again, and its documents come from the cache when they hold no
secret (rule 10: those are parsed again). What this run checks is stored for the next.
The namespace (virtsync version, schema, rule code) is the one `validate` uses without
--ignore-unknown, the check `check_bytes` runs here: any change re-checks every file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from reconciler.check.validate import cache_namespace
from reconciler.core.model import Manifest
from reconciler.core.sensitive import digest_sensitive
from reconciler.core.statedir import state_dir
from reconciler.tree.cache import DB_NAME, CachedFile, ValidationCache

# Rows of the `files` index belong to `validate`'s scopes; this reader keeps none.
_NO_SCOPE = ""


class DocumentCache:
    def __init__(self, cache: ValidationCache) -> None:
        self._cache = cache
        self._documents: dict[str, tuple[Sequence[Manifest], Sequence[str]]] = {}

    @classmethod
    def open(cls) -> DocumentCache:
        """One refresh's view (an unusable database reads as empty, never fails)."""
        return cls(ValidationCache(state_dir() / "cache" / DB_NAME, cache_namespace(False),
                                   _NO_SCOPE))

    def result(self, sha256: str) -> CachedFile | None:
        return self._cache.get(sha256)

    def manifests(self, sha256: str, display: str) -> tuple[tuple[Manifest, ...] | None, bool]:
        """The stored documents (None: parse the file), and whether the cache has their
        row (a content holding a secret has one without documents)."""
        return self._cache.find_manifests(sha256, display)

    def digested(self, sha256: str, display: str,
                 ) -> tuple[tuple[Manifest, ...], tuple[str, ...]] | None:
        """A content holding a secret: its documents with each secret digested, and the
        raw bodies' hashes (for planning only: never applied, see WorkdirTree)."""
        return self._cache.find_digested(sha256, display)

    def learn(self, sha256: str, result: CachedFile | None,
              documents: tuple[Sequence[Manifest], Sequence[str]] | None) -> None:
        """Remember what this run found out about a content: its validation result (None:
        the cache had it) and its documents with their body hashes (None: the cache has
        their row). A refusal for the run's alias budget depends on the other files, so
        it is not stored."""
        if result is not None:
            from reconciler.tree.yamlsafe import RUN_BUDGET_RULE  # a file was parsed: loaded

            if any(f.rule == RUN_BUDGET_RULE for f in result.findings):
                return
            self._cache.put(sha256, result)
        if documents is not None:
            self._documents[sha256] = documents

    def close(self) -> None:
        """Write what was learned, then let go of the database. Documents holding a
        secret are stored only with the secret digested, and only VMs (nothing another
        object's revision is computed from)."""
        plain: dict[str, Sequence[Manifest]] = {}
        digested: dict[str, tuple[Sequence[Manifest], Sequence[str]]] = {}
        for sha, (docs, hashes) in self._documents.items():
            hidden = [replace(m, body=digest_sensitive(dict(m.body))) for m in docs]
            if all(h.body == m.body for h, m in zip(hidden, docs, strict=True)):
                plain[sha] = docs
            elif all(m.kind == "VirtualMachine" for m in docs):
                digested[sha] = (hidden, hashes)
            else:
                plain[sha] = docs  # stored as "not stored": parsed again
        self._cache.save_results()
        self._cache.save_manifests(plain)
        self._cache.save_digested(digested)
        self._cache.close()
