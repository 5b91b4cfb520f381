"""Server-side apply and update ownership of the Kubernetes API model (managedFields).

MODEL of structured-merge-diff at leaf granularity (see fields.py): an apply merges the
applied configuration into the live object, reports conflicts with other managers that
own a field being changed to a different value (409, unless force), and removes fields
the applier owned before and now omits when no other manager owns them. A non-apply
write (create/update/patch) gives its manager the fields it changed and takes them from
the others, without conflicts, as the API server does.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import ApiError
from .fields import (
    JSON,
    MISSING,
    Path,
    dotted,
    from_fields_v1,
    leaves,
    lookup,
    merge,
    overlaps,
    remove,
    to_fields_v1,
    tracked_view,
)

APPLY = "Apply"
UPDATE = "Update"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Entry:
    manager: str
    operation: str
    api_version: str
    fields: set[Path] = field(default_factory=set)
    time: str = field(default_factory=now)

    def render(self) -> JSON:
        return {"manager": self.manager, "operation": self.operation,
                "apiVersion": self.api_version, "time": self.time, "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(self.fields)}


def entries_of(obj: JSON | None) -> list[Entry]:
    if not obj:
        return []
    return [Entry(e["manager"], e["operation"], e.get("apiVersion", ""),
                  from_fields_v1(e.get("fieldsV1") or {}), e.get("time", now()))
            for e in obj.get("metadata", {}).get("managedFields") or []]


def store_entries(obj: JSON, entries: list[Entry]) -> None:
    kept = [e for e in entries if e.fields]
    if kept:
        obj.setdefault("metadata", {})["managedFields"] = [e.render() for e in kept]
    else:
        obj.get("metadata", {}).pop("managedFields", None)


@dataclass(frozen=True)
class Conflict:
    manager: str
    api_version: str
    path: Path


def conflict_error(kind: str, group: str, name: str, conflicts: list[Conflict]) -> ApiError:
    """409 worded as the API server words it: `Apply failed with 1 conflict: conflict with
    "kubectl" using kubevirt.io/v1: .spec.runStrategy`."""
    count = len(conflicts)
    by_manager: dict[tuple[str, str], list[str]] = {}
    for c in conflicts:
        by_manager.setdefault((c.manager, c.api_version), []).append(dotted(c.path))
    parts = []
    for (manager, version), paths in by_manager.items():
        if len(paths) == 1:
            parts.append(f'conflict with "{manager}" using {version}: {paths[0]}')
        else:
            parts.append(f'conflicts with "{manager}" using {version}:\n'
                         + "\n".join(f"- {p}" for p in paths))
    plural = "conflict" if count == 1 else "conflicts"
    message = f"Apply failed with {count} {plural}: " + "\n".join(parts)
    causes = [{"type": "FieldManagerConflict", "field": dotted(c.path),
               "message": f'conflict with "{c.manager}" using {c.api_version}'}
              for c in conflicts]
    return ApiError(409, "Conflict", message,
                    details={"name": name, "group": group, "kind": kind, "causes": causes})


@dataclass(frozen=True)
class ApplyRequest:
    manager: str
    api_version: str
    force: bool
    status_subresource: bool


def _owner(entries: list[Entry], manager: str, operation: str, api_version: str) -> Entry:
    for e in entries:
        if e.manager == manager and e.operation == operation:
            e.api_version = api_version
            return e
    e = Entry(manager, operation, api_version)
    entries.append(e)
    return e


def apply(live: JSON | None, applied: JSON, req: ApplyRequest) -> JSON:
    """The object after applying `applied` as `req.manager` (managedFields included);
    raises the 409 conflict error unless forced."""
    base: JSON = copy.deepcopy(live) if live else {}
    entries = entries_of(base)
    view = tracked_view(applied, status_subresource=req.status_subresource)
    wanted = leaves(view)
    others = [e for e in entries if not (e.manager == req.manager and e.operation == APPLY)]
    conflicts: list[Conflict] = []
    for other in others:
        for owned in sorted(other.fields):
            for path in wanted:
                if _collides(owned, path, view) and lookup(base, path) != lookup(view, path):
                    conflicts.append(Conflict(other.manager, other.api_version, owned))
                    break
    if conflicts and not req.force:
        meta = applied.get("metadata") or {}
        kind = applied.get("kind", "")
        raise conflict_error(kind, req.api_version.partition("/")[0], meta.get("name", ""),
                             conflicts)
    for c in conflicts:
        for e in others:
            if e.manager == c.manager:
                e.fields.discard(c.path)
    mine = _owner(entries, req.manager, APPLY, req.api_version)
    previous = set(mine.fields)
    merged = merge(base, merge(_untracked(applied), view))
    kept_by_others = {p for e in others for p in e.fields}
    for path in sorted(previous - wanted, key=len, reverse=True):
        if any(overlaps(p, path) for p in kept_by_others) or any(
                _collides(path, w, view) or overlaps(w, path) for w in wanted):
            continue
        remove(merged, path)
    mine.fields = wanted
    mine.time = now()
    store_entries(merged, entries)
    return merged


def _collides(owned: Path, applied: Path, view: JSON) -> bool:
    """Whether setting `applied` replaces the owned field: the same field, or a field
    under an applied atomic value (a list or scalar; an applied empty map merges)."""
    if owned == applied:
        return True
    return overlaps(owned, applied) and not isinstance(lookup(view, applied), dict)


def _untracked(applied: JSON) -> JSON:
    """apiVersion, kind, name and namespace of an applied configuration."""
    out = {k: v for k, v in applied.items() if k in ("apiVersion", "kind")}
    meta = {k: v for k, v in (applied.get("metadata") or {}).items()
            if k in ("name", "namespace", "generateName")}
    if meta:
        out["metadata"] = meta
    return out


def record_update(old: JSON | None, new: JSON, manager: str, api_version: str, *,
                  status_subresource: bool) -> None:
    """Give `manager` (operation Update) the fields a non-apply write changed, take them
    from the other managers, and drop ownership of fields that are gone."""
    entries = entries_of(old)
    before = tracked_view(old or {}, status_subresource=status_subresource)
    after = tracked_view(new, status_subresource=status_subresource)
    present = leaves(after)
    changed = {p for p in present if lookup(before, p) != lookup(after, p)}
    for e in entries:
        e.fields = {p for p in e.fields if lookup(after, p) is not MISSING
                    and not any(overlaps(p, c) or overlaps(c, p) for c in changed)}
    if changed:
        mine = _owner(entries, manager, UPDATE, api_version)
        mine.fields |= changed
        mine.time = now()
    store_entries(new, entries)


def owners(obj: JSON) -> dict[str, set[Path]]:
    """manager → owned paths (test helper)."""
    out: dict[str, set[Path]] = {}
    for e in entries_of(obj):
        out.setdefault(e.manager, set()).update(e.fields)
    return out


def applied_fields_changed(a: JSON, b: JSON) -> bool:
    """Whether two stored objects differ in anything but managedFields timestamps."""
    def strip(o: JSON) -> Any:
        o = copy.deepcopy(o)
        for e in o.get("metadata", {}).get("managedFields") or []:
            e.pop("time", None)
        return o
    return bool(strip(a) != strip(b))
