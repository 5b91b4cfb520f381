"""One reconciler per state directory (safety rule 8): a lock that names its holder.

The lock is a kernel file lock (`reconciler.core.flock`), so it is released when its holder dies,
even by `kill -9`; a second `apply` or `watch` fails fast and says who holds it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import TracebackType

from reconciler.core.flock import FileLock, LockTimeout
from reconciler.core.fsutil import write_atomic
from reconciler.core.model import VirtsyncError


class LockHeld(VirtsyncError):
    """Another virtsync process holds the state directory."""


class StateLock:
    def __init__(self, state: Path, command: str | None = None) -> None:
        state.mkdir(parents=True, exist_ok=True)
        self.path = state / "reconciler.lock"
        self.holder_path = state / "reconciler.lock.holder"
        self.command = command or " ".join(["virtsync", *sys.argv[1:]])
        self._lock = FileLock(str(self.path))

    def holder(self, wait: float = 1.0) -> str:
        # The holder writes its note just after taking the lock: a loser that comes in
        # between waits for it briefly rather than naming "an unknown process".
        deadline = time.monotonic() + wait
        while True:
            try:
                info = json.loads(self.holder_path.read_text())
                started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(info["started"]))
                return (f"pid {info['pid']} on {info['host']} running `{info['command']}` "
                        f"since {started}")
            except (OSError, ValueError, KeyError, TypeError):
                if time.monotonic() >= deadline:
                    return "an unknown process"
                time.sleep(0.05)

    def acquire(self) -> None:
        try:
            self._lock.acquire(timeout=0)
        except LockTimeout:
            raise LockHeld(f"another virtsync holds {self.path.parent}: {self.holder()}; "
                           "wait for it to finish or stop it") from None
        # os.uname's node name is what socket.gethostname() returns on Linux (glibc reads
        # it from uname), without importing socket on every apply (issue 13).
        info = {"pid": os.getpid(), "host": os.uname().nodename, "command": self.command,
                "started": time.time()}
        # Not fsync'd: the note only names a live holder in a loser's message; a power
        # cut ends its holder too, and a torn note reads as "an unknown process".
        write_atomic(self.holder_path, json.dumps(info).encode(), sync=False)

    def release(self) -> None:
        try:
            self.holder_path.unlink()
        except FileNotFoundError:
            pass
        self._lock.release()

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
