"""File versions parsed at most once per run, for reads of a few files of a tree.

`plan --base` reads only the files that differ between its two sides (a whole-tree read,
`reconciler.tree.source.read_tree`, would parse every file): each version, named by
(display path, git blob id), is parsed once however often it is asked for, and a version
validation already parsed is handed in (`seed`) instead of parsed again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.core.model import KNOWN_KINDS, Manifest
from reconciler.tree.loader import load_bytes

if TYPE_CHECKING:  # git is read only at a revision: not by a plan of the working tree
    from reconciler.tree.gitsource import TreeEntry


def known(m: Manifest) -> bool:
    """Is this a kind virtsync plans (others are left to validation to report)?"""
    return m.kind in KNOWN_KINDS.get(m.group, frozenset())


class FileVersions:
    """Known manifests per (display path, blob id): each file version parsed once."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, str], tuple[Manifest, ...]] = {}
        self.warnings: list[str] = []  # problems of a revision read with `tolerant`

    def seed(self, display: str, blob: str, manifests: Iterable[Manifest]) -> None:
        self._known[(display, blob)] = tuple(m for m in manifests if known(m))

    def manifests(self, display: str, blob: str, read: Callable[[], bytes], *,
                  tolerant: bool = False) -> tuple[Manifest, ...]:
        key = (display, blob)
        if key not in self._known:
            loaded = load_bytes(read(), display)
            errors = [f for f in loaded.findings if f.severity == "error"]
            if tolerant and errors:
                # A base revision may be broken (a pull request can fix it): its objects
                # in this file are unknown, so they show as created. Say so, not fail.
                first = errors[0]
                self.warnings.append(f"base revision: {first.file}:{first.line}: "
                                     f"{first.message}")
            self._known[key] = tuple(m for m in loaded.manifests if known(m))
        return self._known[key]

    def at_revision(self, root: Path, entries: Sequence[TreeEntry]) -> list[Manifest]:
        """The manifests of these entries of a git listing (blobs read in one batch);
        a broken file is a warning, not an error."""
        from reconciler.tree.gitsource import display_path, read_blobs

        todo = [e for e in entries if (display_path(root, e.path), e.sha) not in self._known]
        blobs = read_blobs(root, (e.sha for e in todo))
        return [m for e in entries
                for m in self.manifests(display_path(root, e.path), e.sha,
                                        partial(blobs.__getitem__, e.sha), tolerant=True)]
