"""hostDisk paths against a node's hostDisk root, compared by name only. Pure.

Safety rule 14: a hostDisk file lives under its node's `hostDiskDir` and never in
virtsync's own trees (storageDir: claims, VM files, identity store, console logs;
imageDir; the state directory). `validate` can only compare paths as written (it does not
see the node's symlinks); the node resolves symlinks again before it touches a file
(node.storage.disks), and refuses a hostDiskDir that overlaps its own trees (node.cluster.config).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reconciler.core.model import (
    KUBEVIRT_GROUP,
    TEMPLATE_PATH,
    VIRTSYNC_GROUP,
    HostPath,
    HostPathKind,
    Issue,
    JSONPath,
    Manifest,
    ManifestFacts,
    SourceRef,
    get_path,
    template_spec_of,
)


def normal(path: str) -> str:
    """`path` with `.`, `..` and repeated slashes folded (POSIX keeps a leading '//')."""
    folded = posixpath.normpath(path)
    return "/" + folded.lstrip("/") if folded.startswith("/") else folded


def within(path: str, root: str) -> bool:
    """True when `path` is `root` or below it, by name."""
    p, r = normal(path), normal(root)
    return p == r or p.startswith(r.rstrip("/") + "/")


def overlaps(a: str, b: str) -> bool:
    return within(a, b) or within(b, a)


def target(root: str, path: str) -> str | None:
    """Where a hostDisk `path` (absolute, or relative to `root`) lands, by name; None when
    it leaves `root` or names `root` itself."""
    full = normal(path if path.startswith("/") else f"{root}/{path}")
    return full if within(full, root) and full != normal(root) else None


def dir_conflict(host_disk_dir: str, own: Iterable[tuple[str, str]]) -> str | None:
    """Why `host_disk_dir` may not be a hostDisk root: it is, holds or sits inside one of
    virtsync's own trees (`own`: (what, path) pairs). None when apart from all of them."""
    for what, tree in own:
        if overlaps(host_disk_dir, tree):
            return (f"hostDiskDir {host_disk_dir} overlaps virtsync's {what} {tree}; "
                    "hostDisk files must live apart from virtsync's own trees (safety rule 14)")
    return None


# --------------------------------------------------------------------------- validate

CLUSTER_KIND = "Cluster"
_TREES = ("storageDir", "imageDir")


def _nodes(m: Manifest) -> list[tuple[int, Mapping[str, Any]]]:
    spec = m.body.get("spec")
    nodes = spec.get("nodes") if isinstance(spec, Mapping) else None
    return [(i, n) for i, n in enumerate(nodes or []) if isinstance(n, Mapping)]


def is_cluster(m: Manifest) -> bool:
    return m.group == VIRTSYNC_GROUP and m.kind == CLUSTER_KIND


def host_paths(m: Manifest) -> tuple[HostPath, ...]:
    """The hostDisk paths of a VM, or the hostDiskDirs of a Cluster (for `check_tree`)."""
    out: list[HostPath] = []
    if is_cluster(m):
        for i, node in _nodes(m):
            value = node.get(HostPathKind.HOST_DISK_DIR)
            if isinstance(value, str):
                out.append(HostPath(HostPathKind.HOST_DISK_DIR, value,
                                    ("spec", "nodes", i, HostPathKind.HOST_DISK_DIR)))
    elif m.group == KUBEVIRT_GROUP and m.kind == "VirtualMachine":
        out += [HostPath(HostPathKind.HOST_DISK, value, where)
                for value, where in vm_host_disks(template_spec_of(m.body))]
    return tuple(out)


def vm_host_disks(template_spec: Mapping[str, Any]) -> tuple[tuple[str, JSONPath], ...]:
    """(path, where it is written) of every hostDisk volume of a VM whose
    spec.template.spec is `template_spec` (VmSpec.host_disks). Here, not in the VM model
    (core/vmspec.py): `validate` reads every file's hostDisk paths, and a warm run after an
    edit should not import the model's typed parts for one list (issue 13)."""
    volumes = template_spec.get("volumes")
    out: list[tuple[str, JSONPath]] = []
    for i, vol in enumerate(volumes if isinstance(volumes, list) else ()):
        path = get_path(vol, ("hostDisk", "path"))
        if isinstance(path, str):
            out.append((path, (*TEMPLATE_PATH, "volumes", i, "hostDisk", "path")))
    return tuple(out)


def check_cluster(m: Manifest) -> list[Issue]:
    """A Cluster node whose hostDiskDir overlaps the storageDir or imageDir it names."""
    issues: list[Issue] = []
    for i, node in _nodes(m):
        root = node.get(HostPathKind.HOST_DISK_DIR)
        if not isinstance(root, str):
            continue
        own = [(key, node[key]) for key in _TREES if isinstance(node.get(key), str)]
        problem = dir_conflict(root, own)
        if problem is not None:
            issues.append(Issue(("spec", "nodes", i, HostPathKind.HOST_DISK_DIR), problem,
                                "semantic.hostdisk-dir-overlap"))
    return issues


def check_tree(all_facts: Sequence[ManifestFacts]) -> list[tuple[SourceRef, Issue]]:
    """With the tree's one Cluster known: every hostDisk path must land inside a node's
    hostDiskDir, as apply would demand. Without a Cluster in the tree nothing is known."""
    clusters = [f for f in all_facts if f.key.kind == CLUSTER_KIND]
    if len(clusters) != 1:
        return []
    (cluster,) = clusters
    roots = [h.value for h in cluster.host_paths if h.what == HostPathKind.HOST_DISK_DIR]
    out: list[tuple[SourceRef, Issue]] = []
    for f in sorted(all_facts, key=lambda f: f.source):
        for h in f.host_paths:
            if h.what != HostPathKind.HOST_DISK:
                continue
            if not roots:
                out.append((f.source, Issue(h.path, (
                    f"hostDisk needs a hostDiskDir on the node, and the Cluster "
                    f"({cluster.source.file}) sets none; hostDisk files live only there "
                    "(safety rule 14)"), "semantic.hostdisk-no-root")))
            elif all(target(r, h.value) is None for r in roots):
                out.append((f.source, Issue(h.path, (
                    f"hostDisk path {h.value!r} is outside the nodes' hostDiskDir "
                    f"({', '.join(sorted(set(roots)))}) (safety rule 14)"),
                    "semantic.hostdisk-outside")))
    return out
