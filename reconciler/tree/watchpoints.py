"""Where file events can signal a change to a desired tree (for `virtsync watch`).

The working tree: every path under it but git's own files. A committed tree: only what
moves a ref (HEAD, refs, packed-refs) in the repository's git directories.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WatchPoint:
    """A folder to watch for file events, and which of its paths can change the tree."""

    folder: Path
    recursive: bool
    relevant: Callable[[str], bool]


def outside_git_dir(path: str) -> bool:
    return not (f"{os.sep}.git{os.sep}" in path or path.endswith(f"{os.sep}.git"))


def names_a_ref(path: str) -> bool:
    """On a git directory only HEAD, refs and packed-refs matter (never lock files)."""
    name = os.path.basename(path)
    return not name.endswith(".lock") and (
        name in ("HEAD", "packed-refs") or f"{os.sep}refs{os.sep}" in path)
