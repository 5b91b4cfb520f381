"""The one way into a desired tree, for every mode that reads one.

    read_tree(PATH)        the working tree under PATH   (plan PATH, apply, status, watch,
    read_tree(PATH, REV)   PATH as committed at REV       render; watch --git-ref)
    read_desired(...)      the same, as `Desired` for planning; an invalid tree raises
                           (safety rule 1)

Each file is parsed once per read, and a tree kept open (`open_tree`, then `refresh`)
re-parses only what changed. `plan --base` reads only the files that differ between its
two sides, which a whole-tree read would defeat: it asks `FileVersions` for them, each
version parsed once (reconciler.planning.gitplan).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Protocol

from reconciler.core.model import ObjectKey
from reconciler.tree.desired import Desired, InvalidSource
from reconciler.tree.desired_state import GitTree, Snapshot, WorkdirTree, changed_keys
from reconciler.tree.versions import FileVersions
from reconciler.tree.watchpoints import WatchPoint

__all__ = ["Desired", "FileVersions", "InvalidSource", "Snapshot", "TreeSource", "WatchPoint",
           "changed_keys", "open_tree", "read_desired", "read_tree"]


class TreeSource(Protocol):
    """A desired tree kept in memory: all `watch` (and any other reader) needs of it."""

    root: Path  # the folder whose inventory this tree's objects go to
    deletions_need_full_read: bool  # may a partial re-read miss a file that still exists?

    def refresh(self, paths: Collection[str] | None = None) -> int:
        """Re-read (`paths`: only what file events named, where that suffices); how many
        files were re-checked or removed."""
        ...

    def snapshot(self) -> Snapshot: ...

    def take_dirty(self) -> set[ObjectKey]:
        """Keys whose files were re-checked since the last call."""
        ...

    def watch_points(self) -> list[WatchPoint]:
        """Where file events can signal a change."""
        ...


def open_tree(path: str, rev: str | None = None) -> TreeSource:
    """The tree at PATH (the working tree, or committed at `rev`), not read yet; files
    the validation cache knows are not checked again (nor parsed, without a secret)."""
    return WorkdirTree(path, use_cache=True) if rev is None else GitTree(path, rev)


def read_tree(path: str, rev: str | None = None) -> TreeSource:
    """The tree at PATH (the working tree, or committed at `rev`), read whole."""
    tree = open_tree(path, rev)
    tree.refresh()
    return tree


def read_desired(path: str, rev: str | None = None, *, digested: bool = False,
                 use_cache: bool = True) -> Desired:
    """The valid tree at PATH as planning's desired side; any error finding refuses it
    (safety rule 1), naming every finding. `digested`: for a plan that is never applied,
    files holding a secret may come from the cache with the secret digested
    (`Desired.digested` names their keys) instead of being parsed again. Without
    `use_cache` every file is checked and parsed."""
    if not use_cache and rev is None:
        return _valid(_read(WorkdirTree(path)), path, rev)
    if digested and rev is None:
        tree: TreeSource = WorkdirTree(path, use_cache=True, digested=True)
        tree.refresh()
        snap = tree.snapshot()
        whole = snap.desired() if snap.valid else None
        if whole is None or not any(m is not snap.by_key[m.key] for m in whole.manifests
                                    if m.key in snap.digested):
            return _valid(snap, path, rev)
        # A pinned revisionName changes a body whose raw hash only a real read gives.
    return _valid(read_tree(path, rev).snapshot(), path, rev)


def _read(tree: TreeSource) -> Snapshot:
    tree.refresh()
    return tree.snapshot()


def _valid(snap: Snapshot, path: str, rev: str | None) -> Desired:
    if not snap.valid:
        where = path if rev is None else f"{path} at {rev}"
        raise InvalidSource(f"{len(snap.errors)} validation error(s) in {where}; nothing "
                            "planned, applied or pruned",
                            "".join(f.as_text() + "\n" for f in snap.findings))
    return snap.desired()
