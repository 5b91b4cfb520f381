"""Inventory: what virtsync applied from each source root (safety rule 4).

Prune = inventory − desired, never live − desired: an object virtsync did not apply
from this source is never pruned, whatever its name. Each entry remembers the disk
policy the object carried in git when last applied, so a removed VM's disks are
deleted only when git said `Delete` before it was removed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.core.fsutil import write_atomic
from reconciler.core.model import JSON, RUNNABLE_KINDS, Manifest, ObjectKey, VirtsyncError
from reconciler.core.sensitive import digest_sensitive
from reconciler.planning.plan import DISK_POLICY_ANNOTATION

FORMAT = "virtsync-inventory/1"


@dataclass(frozen=True, order=True)
class InventoryEntry:
    key: ObjectKey
    api_version: str = ""
    revision: str = ""
    delete_disks: bool = False
    # Configuration objects (no host runs them) keep their applied body here, secrets as
    # digests, so the next plan can compare against it; None for VMs (the backend has it).
    body: Mapping[str, JSON] | None = field(default=None, compare=False)


def disk_policy_deletes(m: Manifest) -> bool:
    meta = m.body.get("metadata") or {}
    annotations = meta.get("annotations") or {} if isinstance(meta, dict) else {}
    return isinstance(annotations, dict) and annotations.get(DISK_POLICY_ANNOTATION) == "Delete"


def source_id(root: Path) -> str:
    """A stable id for a source root: the same checkout path → the same inventory."""
    real = str(root.resolve())
    return hashlib.sha256(real.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Inventory:
    source: str
    entries: Mapping[ObjectKey, InventoryEntry]

    @staticmethod
    def path_for(state: Path, source: str) -> Path:
        return state / "inventory" / f"{source}.json"

    @classmethod
    def load(cls, state: Path, source: str) -> Inventory:
        path = cls.path_for(state, source)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls(source, {})
        except OSError as exc:
            raise _unreadable(str(path), exc) from None
        return cls.decode(source, data, str(path))

    @classmethod
    def decode(cls, source: str, data: bytes, where: str) -> Inventory:
        """The inventory from its JSON document; `where` names it in errors."""
        try:
            raw = json.loads(data)
        except ValueError as exc:
            raise _unreadable(where, exc) from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise VirtsyncError(f"inventory {where} has an unknown format")
        entries = {}
        for e in raw["objects"]:
            key = ObjectKey(e["kind"], e["namespace"], e["name"])
            body = e.get("body")
            entries[key] = InventoryEntry(key, e.get("apiVersion", ""), e.get("revision", ""),
                                          bool(e.get("deleteDisks", False)),
                                          body if isinstance(body, dict) else None)
        return cls(source, entries)

    def encode(self) -> bytes:
        objects = [{"kind": e.key.kind, "namespace": e.key.namespace, "name": e.key.name,
                    "apiVersion": e.api_version, "revision": e.revision,
                    "deleteDisks": e.delete_disks,
                    **({"body": e.body} if e.body is not None else {})}
                   for e in sorted(self.entries.values())]
        return json.dumps({"format": FORMAT, "source": self.source, "objects": objects},
                          indent=1).encode()

    def save(self, state: Path) -> None:
        data = self.encode()
        path = self.path_for(state, self.source)
        try:
            if path.read_bytes() == data:
                return  # an unchanged inventory makes no write (rule 12)
        except FileNotFoundError:
            pass
        write_atomic(path, data)

    def with_applied(self, applied: Iterable[Manifest], revision: str) -> Inventory:
        entries = dict(self.entries)
        for m in applied:
            body = None if m.kind in RUNNABLE_KINDS else digest_sensitive(dict(m.body))
            entries[m.key] = InventoryEntry(m.key, m.api_version, revision,
                                            disk_policy_deletes(m), body)
        return Inventory(self.source, entries)

    def without(self, removed: Iterable[ObjectKey]) -> Inventory:
        gone = set(removed)
        return Inventory(self.source, {k: v for k, v in self.entries.items() if k not in gone})


def _unreadable(where: str, exc: Exception) -> VirtsyncError:
    # Unlike a cache, a damaged inventory must stop prune, not be guessed at.
    return VirtsyncError(f"inventory {where} is unreadable ({exc}); refusing to "
                         "continue: restore it or remove it to disable pruning")


def managed_keys(state: Path) -> frozenset[ObjectKey]:
    """Every object any source of this installation applied (all inventories)."""
    keys: set[ObjectKey] = set()
    for path in sorted((state / "inventory").glob("*.json")):
        keys.update(Inventory.load(state, path.stem).entries)
    return frozenset(keys)
