"""Read the YAML files of a directory as they are at a git revision, without a checkout.

`git ls-tree -r -z -l` lists blobs with their ids (git's content hashes, free of charge),
and one `git cat-file --batch` process streams the contents of just the blobs asked for.
Only regular *.yaml/*.yml files are read; symbolic links are not followed (safety rule 9)
and the folders the loader skips are skipped here too. A revision that cannot be read is
an error, never "nothing there" (safety rule 2).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.core.model import VirtsyncError
from reconciler.tree.loader import SKIP_DIRS, YAML_SUFFIXES, IgnoreRules

REGULAR_MODES = frozenset({"100644", "100755"})


@dataclass(frozen=True)
class TreeEntry:
    path: str  # relative to the repository root, '/'-separated
    sha: str  # git blob id
    size: int


@dataclass(frozen=True)
class GitListing:
    """The YAML blobs of a folder at one commit (the desired-state tree read from git
    is `desired_state.GitTree`; this is only git's listing of it)."""

    root: Path  # repository top level
    rev: str  # as given
    commit: str
    tree: str | None  # tree id of the listed folder at that commit (None: folder absent)
    entries: tuple[TreeEntry, ...]


def _git(root: Path, *args: str, input: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], input=input,
                              capture_output=True, check=False)
    except OSError as exc:
        raise VirtsyncError(f"cannot run git: {exc.strerror}") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        raise VirtsyncError(f"git {args[0]} failed: {message[-1] if message else 'no output'}")
    return done.stdout


def repo_root(path: str | Path) -> Path:
    """The top level of the git work tree holding `path`."""
    p = Path(path).resolve()
    start = p if p.is_dir() else p.parent
    try:
        out = _git(start, "rev-parse", "--show-toplevel")
    except VirtsyncError:
        raise VirtsyncError(f"{path}: not inside a git work tree (needed for --base)") from None
    return Path(out.decode().strip())


def relative_to_root(root: Path, path: str | Path) -> str:
    """A path as git names it: relative to the top level, '/'-separated, '' for the top."""
    rel = Path(os.path.abspath(path)).relative_to(root.resolve()).as_posix()
    return "" if rel == "." else rel


def resolve_commit(root: Path, rev: str) -> str:
    if rev.startswith("-"):
        raise VirtsyncError(f"bad revision {rev!r}")
    try:
        return _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options",
                    f"{rev}^{{commit}}").decode().strip()
    except VirtsyncError:
        raise VirtsyncError(f"unknown git revision {rev!r} (is the history fetched? "
                            "in CI, check out with fetch-depth: 0)") from None


def list_tree(root: Path, rev: str, subpath: str,
              ignore: IgnoreRules | None = None) -> GitListing:
    """Every regular YAML blob under `subpath` at `rev`, minus what `ignore` (the work
    tree's .virtsyncignore of that folder, by default) leaves out."""
    if ignore is None:
        ignore = IgnoreRules.read(root / subpath)
    commit = resolve_commit(root, rev)
    spec = f"{commit}:{subpath}" if subpath else f"{commit}^{{tree}}"
    try:
        tree: str | None = _git(root, "rev-parse", "--verify", "--quiet", spec).decode().strip()
    except VirtsyncError:
        tree = None  # the folder does not exist at that revision: it held nothing
    entries: list[TreeEntry] = []
    if tree is not None:
        raw = _git(root, "ls-tree", "-r", "-z", "-l", "--full-tree", commit, "--",
                   subpath or ".")
        for record in raw.split(b"\0"):
            if not record:
                continue
            meta, _, name = record.partition(b"\t")
            mode, kind, sha, size = meta.decode().split()
            path = name.decode("utf-8", errors="surrogateescape")
            if kind != "blob" or mode not in REGULAR_MODES:
                continue
            if subpath and path != subpath and not path.startswith(subpath + "/"):
                continue
            parts = path.split("/")
            if not parts[-1].endswith(YAML_SUFFIXES) or any(p in SKIP_DIRS for p in parts[:-1]):
                continue
            if ignore.patterns and _ignored(ignore, path[len(subpath) + 1:] if subpath else path):
                continue
            entries.append(TreeEntry(path, sha, int(size)))
    return GitListing(root, rev, commit, tree, tuple(sorted(entries, key=lambda e: e.path)))


def _ignored(ignore: IgnoreRules, rel: str) -> bool:
    parts = rel.split("/")
    folders = ("/".join(parts[:i]) for i in range(1, len(parts)))
    return any(ignore.ignores(f, True) for f in folders) or ignore.ignores(rel, False)


def read_blobs(root: Path, shas: Iterable[str]) -> dict[str, bytes]:
    """Contents of the given blobs, through one `git cat-file --batch` call."""
    wanted = sorted(set(shas))
    if not wanted:
        return {}
    out = _git(root, "cat-file", "--batch", input="".join(s + "\n" for s in wanted).encode())
    blobs: dict[str, bytes] = {}
    pos = 0
    for sha in wanted:
        end = out.index(b"\n", pos)
        header = out[pos:end].decode().split()
        if len(header) != 3 or header[1] != "blob":
            raise VirtsyncError(f"git cat-file: cannot read blob {sha}")
        size = int(header[2])
        blobs[header[0]] = out[end + 1:end + 1 + size]
        pos = end + 1 + size + 1  # contents are followed by a newline
    return blobs


def clean_index_blobs(root: Path, subpath: str) -> dict[str, str]:
    """Blob ids of the tracked files under `subpath` whose work-tree copy git sees as
    unmodified (by its stat cache, as `git diff-files` does): their content need not be
    read to know their blob id. Anything else must be read and hashed by the caller."""
    spec = subpath or "."
    staged = _git(root, "ls-files", "--stage", "-z", "--full-name", "--", spec)
    dirty = set(_git(root, "diff-files", "--name-only", "-z", "--", spec).split(b"\0"))
    out: dict[str, str] = {}
    for record in staged.split(b"\0"):
        if not record:
            continue
        meta, _, name = record.partition(b"\t")
        mode, sha, stage = meta.decode().split()
        if stage != "0" or mode not in REGULAR_MODES or name in dirty:
            continue
        out[name.decode("utf-8", errors="surrogateescape")] = sha
    return out


def blob_sha(content: bytes) -> str:
    """git's object id of a blob with this content (what `git hash-object` prints)."""
    h = hashlib.sha1(usedforsecurity=False)
    h.update(b"blob %d\0" % len(content))
    h.update(content)
    return h.hexdigest()


def display_path(root: Path, repo_path: str) -> str:
    """How the loader would name this file in the work tree (relative to the cwd)."""
    absolute = root / repo_path
    try:
        return os.path.relpath(absolute)
    except ValueError:
        return str(absolute)


def entry_map(tree: GitListing) -> Mapping[str, str]:
    return {e.path: e.sha for e in tree.entries}


def git_dirs(repo: Path) -> list[Path]:
    """The repository's git directory and (for a linked worktree) its common directory:
    where a ref can move."""
    out: list[Path] = []
    for flag in ("--absolute-git-dir", "--git-common-dir"):
        done = subprocess.run(["git", "-C", str(repo), "rev-parse", flag],
                              capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip():
            p = Path(done.stdout.strip())
            p = (p if p.is_absolute() else (repo / p)).resolve()
            if p not in out:
                out.append(p)
    if not out:
        raise VirtsyncError(f"{repo}: cannot find the git directory")
    return out
