"""Field paths and field sets of the Kubernetes API model's server-side apply.

A field is a path of map keys from the object root (`("spec", "runStrategy")`). Lists are
atomic (KubeVirt's lists are `x-kubernetes-list-type: atomic` or untyped in its CRDs; the
few associative lists are also treated as atomic by this MODEL), so a list is one leaf;
an empty map is a leaf too. Ownership is tracked per leaf, as structured-merge-diff does.
"""

from __future__ import annotations

import copy
from typing import Any

JSON = dict[str, Any]
Path = tuple[str, ...]

# metadata fields a manager can own; the rest of metadata is the server's.
OWNABLE_METADATA = ("labels", "annotations", "finalizers", "ownerReferences")
_MISSING = object()


def tracked_view(obj: JSON, *, status_subresource: bool) -> JSON:
    """The part of an object whose fields managers own: everything but apiVersion, kind,
    server metadata, and `status` when status is a subresource."""
    view: JSON = {}
    for key, value in obj.items():
        if key in ("apiVersion", "kind") or (key == "status" and status_subresource):
            continue
        if key == "metadata":
            meta = {k: v for k, v in (value or {}).items() if k in OWNABLE_METADATA}
            if meta:
                view["metadata"] = meta
            continue
        view[key] = value
    return view


def leaves(obj: Any, prefix: Path = ()) -> set[Path]:
    if isinstance(obj, dict) and obj:
        out: set[Path] = set()
        for key, value in obj.items():
            out |= leaves(value, (*prefix, key))
        return out
    return {prefix} if prefix else set()


def lookup(obj: Any, path: Path) -> Any:
    """The value at path, or `MISSING`."""
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


MISSING = _MISSING


def remove(obj: JSON, path: Path) -> None:
    """Delete the value at path and then any map on the way that became empty (below the
    top level)."""
    parents: list[JSON] = [obj]
    node: Any = obj
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return
        parents.append(node)
    parents[-1].pop(path[-1], None)
    for depth in range(len(path) - 1, 1, -1):
        if parents[depth]:
            break
        parents[depth - 1].pop(path[depth - 1], None)


def merge(base: JSON, patch: JSON) -> JSON:
    """Deep merge of maps (lists and scalars replace), as apply merges an applied config."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def overlaps(owned: Path, applied: Path) -> bool:
    """Whether owning `owned` collides with setting `applied` (equal, or owned lies under
    the applied leaf, which replaces it atomically)."""
    return owned[:len(applied)] == applied


def dotted(path: Path) -> str:
    return "".join(f".{key}" for key in path)


def to_fields_v1(paths: set[Path]) -> JSON:
    """Kubernetes' FieldsV1 form: `{"f:spec": {"f:runStrategy": {}}}`."""
    root: JSON = {}
    for path in sorted(paths):
        node = root
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return root


def from_fields_v1(fields: JSON, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for key, sub in fields.items():
        if key == ".":
            out.add(prefix)
            continue
        path = (*prefix, key.removeprefix("f:"))
        out |= from_fields_v1(sub, path) if sub else {path}
    return out
