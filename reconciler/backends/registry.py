"""Which backends exist: one entry per backend, by name.

An entry names two modules: the one defining `PROFILE` (a `BackendProfile`: cheap to
import, all planning needs) and the one defining `open_backend(manifests, scope)`, or
none when the backend only plans. They are imported only when asked for, so planning
never loads a backend's driver. The tree's Cluster object picks the backend with
`spec.backend` (default: libvirt); a tree may hold one Cluster object per target,
chosen with `--target`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from reconciler.core.errors import VirtsyncError

if TYPE_CHECKING:
    from node.identity.metadata import Scope
    from reconciler.backends.base import Backend, BackendProfile
    from reconciler.core.model import Manifest

# The protocol and the model are imported where used: `plan`'s parser lists the names,
# and a plan printed as stored needs nothing else from here (issue 13).

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
    "kubevirt": Entry(".kubevirt", ".kubevirt.backend"),
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
    from reconciler.backends.base import BackendProfile

    module = _entry(name, where).profile
    found = getattr(importlib.import_module(module, __package__), "PROFILE", None)
    if not isinstance(found, BackendProfile):
        raise VirtsyncError(f"backend {name!r}: {module} defines no PROFILE")
    return found


def _backend_of(m: Manifest) -> str | None:
    spec = m.body.get("spec")
    name = spec.get("backend") if isinstance(spec, dict) else None
    return name if isinstance(name, str) else None


def cluster_for(manifests: Iterable[Manifest], target: str | None = None) -> Manifest | None:
    """The tree's Cluster object for `target` (a backend name): a tree may hold one
    Cluster object per target (the same VMs planned for libvirt and for KubeVirt); the
    one whose `spec.backend` is `target` counts. Without `target` there must be at most
    one. None: no Cluster object for it (the backend's defaults)."""
    clusters = [m for m in manifests if m.kind == CLUSTER_KIND]
    if target is not None:
        return next((m for m in clusters if (_backend_of(m) or DEFAULT) == target),
                    clusters[0] if len(clusters) == 1 else None)
    if len(clusters) > 1:
        named = ", ".join(f"{_backend_of(m) or DEFAULT} ({m.source.file})" for m in clusters)
        raise VirtsyncError(f"the tree has {len(clusters)} Cluster objects, one per target: "
                            f"{named}; choose one with --target")
    return clusters[0] if clusters else None


def selected(manifests: Iterable[Manifest], target: str | None = None) -> tuple[str, str]:
    """The backend to use and where the tree says so ('' for the default or `target`):
    `target` when given, else the one Cluster object's `spec.backend`."""
    if target:
        return target, ""
    cluster = cluster_for(manifests)
    name = _backend_of(cluster) if cluster is not None else None
    if cluster is not None and name is not None:
        return name, f"{cluster.source.file}: spec.backend: "
    return DEFAULT, ""


def for_tree(manifests: Iterable[Manifest], target: str | None = None) -> BackendProfile:
    """The profile a tree is planned with: `target`'s, else the backend its Cluster object
    names; configured by that object's spec (e.g. KubeVirt's rollout strategy)."""
    manifests = list(manifests)
    name, where = selected(manifests, target)
    cluster = cluster_for(manifests, target)
    spec = cluster.body.get("spec") if cluster is not None else None
    return profile(name, where).for_cluster(spec if isinstance(spec, dict) else {})


def for_target(manifests: Sequence[Manifest], target: str | None) -> list[Manifest]:
    """The tree as `target`'s backend sees it: every object but the other targets'
    Cluster objects."""
    chosen = cluster_for(manifests, target)
    return [m for m in manifests if m.kind != CLUSTER_KIND or m is chosen]


def open_backend(manifests: Sequence[Manifest], scope: Scope,
                 target: str | None = None) -> Backend:
    """Open the backend the tree selects (or `target`), for its objects, scoped to
    `scope` (rule 18)."""
    manifests = for_target(manifests, target)
    name, where = selected(manifests, target)
    entry = _entry(name, where)
    opener = getattr(importlib.import_module(entry.opener, __package__), "open_backend", None) \
        if entry.opener else None
    if not callable(opener):
        raise VirtsyncError(f"{where}backend {name!r} only plans (virtsync plan --base); "
                            "it cannot observe or apply")
    return cast("Backend", opener(manifests, scope))
