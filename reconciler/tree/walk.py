"""The folder walk every reader of a checkout shares: which entries are specs.

Light on purpose (os and enum only): a warm `validate` walks the tree and answers from
the cache before it imports the model, the parsers or the checks (issue 13). The loader
turns the verdicts into SourceFiles and located findings.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from enum import IntEnum
from operator import attrgetter

# Folders never searched for specs (VCS metadata, virtualenvs, caches).
SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__"})
YAML_SUFFIXES = (".yaml", ".yml")
# A file in the folder you name, listing what in it is not a spec (CI workflows,
# kustomizations...): one glob per line, '#' comments, a trailing '/' for folders.
IGNORE_FILE = ".virtsyncignore"

Ignores = Callable[[str, bool], bool]  # ('/'-separated path below the top, is a folder)
_name = attrgetter("name")


class Entry(IntEnum):
    """What the walk found at a path that is not skipped."""

    FILE = 0  # a regular YAML file
    LINK = 1  # a symbolic link (whatever it points to)
    NOT_UTF8 = 2  # a name that is not valid UTF-8
    NOT_REGULAR = 3  # a YAML name that is neither a file nor a folder (a FIFO...)


class Unreadable(Exception):
    def __init__(self, shown: str, strerror: str | None) -> None:
        super().__init__(shown, strerror)
        self.shown = shown
        self.strerror = strerror


def display_path(path: str | os.PathLike[str]) -> str:
    """Path relative to the working directory when below it, else as given."""
    text = os.path.normpath(os.fspath(path))
    if not os.path.isabs(text):
        return text
    cwd = os.getcwd()
    if text == cwd:
        return "."
    if text.startswith(cwd.rstrip("/") + "/"):
        return text[len(cwd.rstrip("/")) + 1:]
    return text


def utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_yaml_name(name: str) -> bool:
    # not an editor's lock file (Emacs: a dangling link named .#file.yaml)
    return name.endswith(YAML_SUFFIXES) and not name.startswith(".#")


def walk(real_top: str, shown_top: str,
         ignores: Ignores | None) -> Iterator[tuple[Entry, str, os.DirEntry[str]]]:
    """(verdict, display path, entry) for each entry under `real_top` (a resolved folder)
    that is a spec candidate, depth first in name order. Folder links are never entered:
    every regular file's real path is its folder's real path plus its name. Raises
    Unreadable for a folder that cannot be listed."""
    # Per entry, only what its verdict needs: a warm `validate` walks 10,000 files, and
    # an enum member looked up on its class costs more than the check (issue 13).
    file, link = Entry.FILE, Entry.LINK
    stack = [(real_top, shown_top, "")]
    while stack:
        real_dir, shown_dir, rel_dir = stack.pop()
        try:
            entries = sorted(os.scandir(real_dir), key=_name)
        except OSError as exc:
            raise Unreadable(shown_dir, exc.strerror) from None
        prefix = os.path.join(shown_dir, "")  # names hold no '/': join once per folder
        for entry in entries:
            name = entry.name
            if not (name.isascii() or utf8(name)):
                # Git, YAML tooling and our own reports all need a text name.
                yield Entry.NOT_UTF8, prefix + name, entry
                continue
            if entry.is_dir(follow_symlinks=False):
                rel = rel_dir + name
                if name not in SKIP_DIRS and not (ignores is not None and ignores(rel, True)):
                    stack.append((entry.path, prefix + name, rel + "/"))
                continue
            if ignores is not None and ignores(rel_dir + name, False):
                continue
            if entry.is_symlink():
                yield link, prefix + name, entry
            elif not is_yaml_name(name):
                continue
            elif entry.is_file(follow_symlinks=False):
                yield file, prefix + name, entry
            else:
                yield Entry.NOT_REGULAR, prefix + name, entry
