"""Structural diff of two normalized bodies into field changes. Pure.

Paths are tuples of mapping keys (str), list indexes (int), `Sel` (an item of a keyed
list, matched by name) and `Marker` (a synthetic field such as a list's order or the
node a VM runs on). Unchanged subtrees cost one `==`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from reconciler.core.model import JSON, DiffOp, path_segment
from reconciler.planning.normalize import Keyed


@dataclass(frozen=True, order=True)
class Sel:
    """The item of a keyed list whose `field` equals `value`: disks[name=root]."""

    field: str
    value: str


@dataclass(frozen=True, order=True)
class Marker:
    """A synthetic field: (order) of a keyed list, (node) of a VM, (file) of a volume."""

    name: str


PathPart: TypeAlias = str | int | Sel | Marker
Path: TypeAlias = tuple[PathPart, ...]

ORDER = Marker("order")
NODE = Marker("node")
DISK_FILE = Marker("file")  # a volume's file on the node is missing (plan.missing_files)


class _Missing:
    """The value of a field that is not there (distinct from null)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


@dataclass(frozen=True)
class FieldDiff:
    """One changed field. `before`/`after` is MISSING for an added/removed field."""

    path: Path
    before: JSON
    after: JSON

    @property
    def op(self) -> DiffOp:
        if self.path and self.path[-1] == ORDER:
            return DiffOp.ORDER
        if self.before is MISSING:
            return DiffOp.ADD
        if self.after is MISSING:
            return DiffOp.REMOVE
        return DiffOp.CHANGE


def format_path(path: Sequence[PathPart]) -> str:
    """spec.template.spec.domain.devices.disks[name=root].bootOrder,
    metadata.labels["app.kubernetes.io/name"], ...devices.disks(order)."""
    out: list[str] = []
    for part in path:
        if isinstance(part, Sel):
            out.append(f"[{part.field}={part.value}]")
        elif isinstance(part, Marker):
            out.append(f"({part.name})")
        else:
            out.append(path_segment(part, not out))
    return "".join(out) or "."


def plain_path(path: Sequence[PathPart]) -> tuple[str | int, ...]:
    """The path with keyed items as their names, for sensitivity checks."""
    out: list[str | int] = []
    for part in path:
        if isinstance(part, Sel):
            out.append(0)
        elif isinstance(part, Marker):
            continue
        else:
            out.append(part)
    return tuple(out)


def diff(before: JSON, after: JSON, path: Path = ()) -> list[FieldDiff]:
    """The changed fields between two normalized values, in document order."""
    out: list[FieldDiff] = []
    _diff(before, after, path, out)
    return out


def _same(a: JSON, b: JSON) -> bool:
    # bool is an int in Python: True == 1 must still be a change.
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _diff(a: JSON, b: JSON, path: Path, out: list[FieldDiff]) -> None:
    if _same(a, b):
        return
    if isinstance(a, Keyed) and isinstance(b, Keyed):
        _diff_keyed(a, b, path, out)
    elif isinstance(a, Mapping) and isinstance(b, Mapping) and not (
        isinstance(a, Keyed) or isinstance(b, Keyed)
    ):
        for k, v in a.items():
            if k in b:
                _diff(v, b[k], (*path, k), out)
            else:
                out.append(FieldDiff((*path, k), v, MISSING))
        for k, v in b.items():
            if k not in a:
                out.append(FieldDiff((*path, k), MISSING, v))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(
        isinstance(x, Mapping) for x in (*a, *b)
    ):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, (*path, i), out)
    else:
        out.append(FieldDiff(path, a, b))


def _diff_keyed(a: Keyed, b: Keyed, path: Path, out: list[FieldDiff]) -> None:
    field = ".".join(b.field)
    for name, item in a.items():
        if name in b:
            _diff(item, b[name], (*path, Sel(field, name)), out)
        else:
            out.append(FieldDiff((*path, Sel(field, name)), item, MISSING))
    for name, item in b.items():
        if name not in a:
            out.append(FieldDiff((*path, Sel(field, name)), MISSING, item))
    if b.ordered:
        common_a = [n for n in a if n in b]
        common_b = [n for n in b if n in a]
        if common_a != common_b:
            out.append(FieldDiff((*path, ORDER), common_a, common_b))


def count_leaves(value: JSON) -> int:
    """How many scalar fields a value holds (for "N unchanged fields hidden")."""
    if isinstance(value, Mapping):
        return sum(count_leaves(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_leaves(v) for v in value)
    return 1
