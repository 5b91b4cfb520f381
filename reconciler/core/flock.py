"""An exclusive lock on a file, held with flock(2): released by the kernel when its
holder dies (even by `kill -9`), exclusive between processes and between threads.

Replaces the `filelock` package on every command's start-up path: importing it cost
35–50 ms per process (it pulls in logging, inspect, secrets, asyncio-style helpers),
more than the work of a small `apply` or `migrate`; the part we use is this.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from types import TracebackType

POLL_SECONDS = 0.05


class LockTimeout(TimeoutError):
    """The lock stayed held by someone else for the whole wait."""


class FileLock:
    """Re-entrant within a thread; two threads (each its own descriptor) exclude each
    other as two processes do. `timeout` < 0 waits forever, 0 tries once."""

    def __init__(self, path: str | os.PathLike[str], timeout: float = -1.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._held = threading.local()  # fd and depth, per thread

    def acquire(self, timeout: float | None = None) -> None:
        depth = getattr(self._held, "depth", 0)
        if depth:
            self._held.depth = depth + 1
            return
        wait = self.timeout if timeout is None else timeout
        deadline = None if wait < 0 else time.monotonic() + wait
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockTimeout(f"{self.path}: held by another process") from None
                time.sleep(POLL_SECONDS)
        self._held.fd, self._held.depth = fd, 1

    def release(self) -> None:
        depth = getattr(self._held, "depth", 0)
        if not depth:
            return
        self._held.depth = depth - 1
        if depth == 1:
            fd = self._held.fd
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
