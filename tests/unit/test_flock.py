"""The flock(2) lock under the state lock and the identity stores."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reconciler.core.flock import FileLock, LockTimeout


def test_reentrant_in_a_thread_and_exclusive_between_threads(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "l")
    got: list[float] = []
    with lock, lock:  # re-entrant: the inner acquire does not wait for the outer
        other = threading.Thread(target=lambda: (lock.acquire(), got.append(time.monotonic()),
                                                 lock.release()))
        other.start()
        time.sleep(0.3)
        assert not got, "a second thread took the lock while the first held it"
        released = time.monotonic()
    other.join(timeout=5)
    assert got and got[0] >= released


def test_timeout_zero_fails_at_once_while_another_process_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "l"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl,sys,time; f=open(sys.argv[1],'w'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(LockTimeout):
            FileLock(path).acquire(timeout=0)
        with pytest.raises(LockTimeout):
            FileLock(path, timeout=0.3).acquire()
        assert 0.25 < time.monotonic() - started < 3
        holder.kill()  # the kernel releases a dead holder's lock (kill -9)
        holder.wait()
        lock = FileLock(path)
        lock.acquire(timeout=5)
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
