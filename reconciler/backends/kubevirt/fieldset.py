"""Server-side apply's field ownership, read from `metadata.managedFields`. Pure.

A live object holds much virtsync never wrote: KubeVirt's defaults (firmware UUID and
serial, machine type), KubeMacPool's MACs, status, other managers' fields. The plan
compares git only with the fields virtsync's field manager owns: `owned_subset` cuts the
live object down to them, so server-filled fields never show as drift, and a field
another manager took over is missing from it (git's value shows as a change).
Format: https://kubernetes.io/docs/reference/using-api/server-side-apply/ (fieldsV1:
`f:<name>` a field, `k:<json>` a list item by its keys, `v:<json>` a set item, `i:<n>` a
list index, `.` the node itself).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping

from reconciler.core.model import JSON

FieldSet = Mapping[str, object]


def manager_fields(obj: Mapping[str, JSON], manager: str) -> dict[str, object] | None:
    """The union of the field sets `manager` applied (operation Apply, the main
    resource), or None when it owns nothing on this object."""
    meta = obj.get("metadata")
    entries = meta.get("managedFields") if isinstance(meta, Mapping) else None
    found: dict[str, object] | None = None
    for e in entries if isinstance(entries, list) else []:
        if not isinstance(e, Mapping) or e.get("manager") != manager \
                or e.get("operation") != "Apply" or e.get("subresource"):
            continue
        fields = e.get("fieldsV1")
        found = _union(found or {}, fields if isinstance(fields, Mapping) else {})
    return found


def _union(a: Mapping[str, object], b: Mapping[str, object]) -> dict[str, object]:
    out: dict[str, object] = dict(a)
    for k, v in b.items():
        mine = out.get(k)
        out[k] = _union(mine, v) if isinstance(mine, Mapping) and isinstance(v, Mapping) \
            else v
    return out


def owned_subset(value: JSON, fields: FieldSet) -> JSON:
    """The part of `value` that `fields` covers (a fresh copy)."""
    children = {k: v for k, v in fields.items() if k != "."}
    if not children:  # a leaf: the whole value is owned (atomic list, scalar, map)
        return copy.deepcopy(value)
    if isinstance(value, Mapping):
        out: dict[str, JSON] = {}
        for k, sub in children.items():
            if k.startswith("f:") and k[2:] in value and isinstance(sub, Mapping):
                out[k[2:]] = owned_subset(value[k[2:]], sub)
        return out
    if isinstance(value, list):
        return [owned_subset(item, sub) for item, sub in _items(value, children)]
    return copy.deepcopy(value)


def _items(items: list[JSON], children: Mapping[str, object]
           ) -> list[tuple[JSON, Mapping[str, object]]]:
    out: list[tuple[JSON, Mapping[str, object]]] = []
    for i, item in enumerate(items):
        for k, sub in children.items():
            sub_fields = sub if isinstance(sub, Mapping) else {}
            if (k.startswith("k:") and _keys_match(item, json.loads(k[2:]))) \
                    or (k.startswith("v:") and json.loads(k[2:]) == item) \
                    or k == f"i:{i}":
                out.append((item, sub_fields))
                break
    return out


def _keys_match(item: JSON, keys: object) -> bool:
    return isinstance(item, Mapping) and isinstance(keys, Mapping) and all(
        item.get(k) == v for k, v in keys.items())


def conflict_text(status: Mapping[str, JSON]) -> str:
    """A 409 apply conflict as a sentence naming the other manager(s) and field(s):
    `conflict with "kubectl-edit" using kubevirt.io/v1: .spec.runStrategy`."""
    details = status.get("details")
    causes = details.get("causes") if isinstance(details, Mapping) else None
    parts = []
    for c in causes if isinstance(causes, list) else []:
        if isinstance(c, Mapping) and c.get("type") == "FieldManagerConflict":
            parts.append(f"{c.get('message', 'conflict')}: {c.get('field', '?')}")
    if parts:
        return "; ".join(parts)
    message = status.get("message")
    return str(message) if message else "conflict"
