"""Which backends exist: one entry per backend, by name.

An entry names two modules: the one defining `PROFILE` (a `BackendProfile`: cheap to
import, all planning needs) and the one defining `open_backend(manifests, scope)`, or
none when the backend only plans. They are imported only when asked for, so planning
never loads a backend's driver. The tree's Cluster object picks the backend with
`spec.backend` (default: libvirt).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from reconciler.backends.base import Backend, BackendProfile
from reconciler.core.model import Manifest, VirtsyncError

if TYPE_CHECKING:
    from node.identity.metadata import Scope

DEFAULT = "libvirt"
CLUSTER_KIND = "Cluster"


@dataclass(frozen=True)
class Entry:
    """Module names, absolute or relative to this package (`.libvirt`: the built-in ones
    are relative, so they hold in the wheel's `virtsync.reconciler.backends` too)."""

    profile: str  # module defining PROFILE
    opener: str | None  # module defining open_backend(manifests, scope); None: plans only


_ENTRIES: dict[str, Entry] = {
    "libvirt": Entry(".libvirt_profile", ".libvirt"),
    "kubevirt": Entry(".kubevirt", None),
}


def names() -> list[str]:
    return sorted(_ENTRIES)


def register(name: str, entry: Entry) -> None:
    """Add (or replace) the backend called `name`: how tests plug in theirs."""
    _ENTRIES[name] = entry


def unregister(name: str) -> None:
    _ENTRIES.pop(name, None)


def _entry(name: str, where: str = "") -> Entry:
    entry = _ENTRIES.get(name)
    if entry is None:
        raise VirtsyncError(f"{where}unknown backend {name!r}; known: {', '.join(names())}")
    return entry


def profile(name: str, where: str = "") -> BackendProfile:
    module = _entry(name, where).profile
    found = getattr(importlib.import_module(module, __package__), "PROFILE", None)
    if not isinstance(found, BackendProfile):
        raise VirtsyncError(f"backend {name!r}: {module} defines no PROFILE")
    return found


def selected(manifests: Iterable[Manifest]) -> tuple[str, str]:
    """The backend the tree's Cluster object names (`spec.backend`), and where it says
    so ('' for the default). More than one Cluster object is the backend's error."""
    for m in manifests:
        if m.kind != CLUSTER_KIND:
            continue
        spec = m.body.get("spec")
        name = spec.get("backend") if isinstance(spec, dict) else None
        if isinstance(name, str):
            return name, f"{m.source.file}: spec.backend: "
    return DEFAULT, ""


def for_tree(manifests: Iterable[Manifest], target: str | None = None) -> BackendProfile:
    """The profile a tree is planned with: `target`'s, else the backend its Cluster object
    names; configured by that object's spec (e.g. KubeVirt's rollout strategy)."""
    manifests = list(manifests)
    name, where = (target, "") if target else selected(manifests)
    spec = next((m.body.get("spec") for m in manifests if m.kind == CLUSTER_KIND), None)
    return profile(name, where).for_cluster(spec if isinstance(spec, dict) else {})


def open_backend(manifests: Sequence[Manifest], scope: Scope) -> Backend:
    """Open the backend the tree selects, for its objects, scoped to `scope` (rule 18)."""
    name, where = selected(manifests)
    entry = _entry(name, where)
    opener = getattr(importlib.import_module(entry.opener, __package__), "open_backend", None) \
        if entry.opener else None
    if not callable(opener):
        raise VirtsyncError(f"{where}backend {name!r} only plans (virtsync plan --base); "
                            "it cannot observe or apply")
    return cast(Backend, opener(manifests, scope))
