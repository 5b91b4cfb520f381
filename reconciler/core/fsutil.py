"""Durable file writes shared by every component that keeps state on disk."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (the directory entry itself)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int | None = None,
                 durable_dir: bool = False, sync: bool = True) -> None:
    """Write via a temporary file in the same directory, fsync, then rename: readers see
    the old or the new content, never a torn file. `mode` keeps a file's permissions;
    `durable_dir` also fsyncs the directory so the rename survives a power cut.
    `sync=False` skips the file's fsync: only for a file whose loss or emptiness after a
    power cut is harmless (the caller says why)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable_dir:
        fsync_dir(path.parent)
