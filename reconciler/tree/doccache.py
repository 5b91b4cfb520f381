"""The validation cache as the desired-state library reads it: by content only.

A file whose bytes `virtsync validate` (or an earlier plan, apply or watch) already
checked is not checked again, and its documents come from the cache when they hold no
secret (rule 10: those are parsed again). What this run checks is stored for the next.
The namespace (virtsync version, schema, rule code) is the one `validate` uses without
--ignore-unknown, the check `check_bytes` runs here: any change re-checks every file.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.check.validate import cache_namespace
from reconciler.core.model import Manifest
from reconciler.core.statedir import state_dir
from reconciler.tree.cache import DB_NAME, CachedFile, ValidationCache
from reconciler.tree.yamlsafe import RUN_BUDGET_RULE

# Rows of the `files` index belong to `validate`'s scopes; this reader keeps none.
_NO_SCOPE = ""


class DocumentCache:
    def __init__(self, cache: ValidationCache) -> None:
        self._cache = cache
        self._documents: dict[str, Sequence[Manifest]] = {}

    @classmethod
    def open(cls) -> DocumentCache:
        """One refresh's view (an unusable database reads as empty, never fails)."""
        return cls(ValidationCache(state_dir() / "cache" / DB_NAME, cache_namespace(False),
                                   _NO_SCOPE))

    def result(self, sha256: str) -> CachedFile | None:
        return self._cache.get(sha256)

    def manifests(self, sha256: str, display: str) -> tuple[Manifest, ...] | None:
        return self._cache.get_manifests(sha256, display)

    def learn(self, sha256: str, result: CachedFile, manifests: Sequence[Manifest]) -> None:
        """Remember a file checked (or parsed) this run; a refusal for the run's alias
        budget depends on the other files, so it is not stored."""
        if any(f.rule == RUN_BUDGET_RULE for f in result.findings):
            return
        if self._cache.get(sha256) is None:
            self._cache.put(sha256, result)
        self._documents[sha256] = manifests

    def close(self) -> None:
        """Write what was learned, then let go of the database."""
        self._cache.save_results()
        self._cache.save_manifests(self._documents)
        self._cache.close()
