"""The desired side as planning takes it: a valid tree's manifests, its revision and hash.

Defined here, below both the tree readers and the planners, so every mode that reads a
tree (`reconciler.tree.source`) hands planning the same value.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.core.digest import content_hash
from reconciler.core.model import JSON, Manifest, ObjectKey, VirtsyncError


@dataclass(frozen=True)
class Desired:
    manifests: tuple[Manifest, ...]
    revision: str  # git commit of the source, '' outside git
    desired_hash: str
    root: Path
    # body_hash of each manifest's body as read, where the reader knows it (a plan skips
    # objects whose hash and live state planned as unchanged before; issue 13)
    hashes: Mapping[ObjectKey, str] = field(default_factory=dict, compare=False, repr=False)
    # Keys whose body was read with every secret already digested (`read_desired(...,
    # digested=True)`: planning only, never applied; rule 10)
    digested: frozenset[ObjectKey] = field(default=frozenset(), compare=False, repr=False)

    @property
    def by_key(self) -> dict[ObjectKey, Manifest]:
        return {m.key: m for m in self.manifests}


class InvalidSource(VirtsyncError):
    """The tree failed validation: nothing is planned, applied or pruned."""

    def __init__(self, message: str, findings_text: str) -> None:
        super().__init__(message)
        self.details = findings_text


def body_hash(body: Mapping[str, JSON]) -> str:
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def desired_hash(hashes: Iterable[tuple[ObjectKey, str]]) -> str:
    """The content hash of a desired state from (key, body hash) pairs (order-free)."""
    return content_hash((str(k), h) for k, h in hashes)


def git_revision(path: Path) -> str:
    """The commit checked out at `path`, or '' when it is not in a git work tree."""
    if _outside_git(path):
        return ""  # what git would answer, without starting it (every watch cycle asks)
    import subprocess  # only where git runs: not a no-op of a folder outside git (issue 13)

    try:
        done = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"],
                              capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


_GIT_LOCATIONS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR")


def _outside_git(path: Path) -> bool:
    """Whether git surely finds no repository for `path`: no `.git` (nor a bare
    repository's `HEAD`) in its real folder or any above, and no variable that sends
    git to a repository elsewhere. Anything else is left to git itself."""
    if any(name in os.environ for name in _GIT_LOCATIONS):
        return False
    real = path.resolve()
    return not any(os.path.lexists(d / ".git") or os.path.lexists(d / "HEAD")
                   for d in (real, *real.parents))
