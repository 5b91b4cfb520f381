"""`qemu-img create` runs made ahead for a batch of new VMs (issue 13).

An apply of N new VMs spent most of its time starting `qemu-img create` one after the
other, each create step waiting for its own. The creations are independent, so a batch
starts them early, in a small pool, each into a temp file of its target's folder (the
name `disks._create_atomically` gives its own temp files). A step that reaches the same
creation (same target, same arguments) takes the made file: a rename instead of a run.

The disk becomes real only in its own step, in the same order, after the same checks:
journal, outcomes and files after a failure are those of a serial run (rules 7 and 17).
A creation that failed ahead is simply run again by its step, which reports its own
error as before. A base image that changed since (its identity: device, inode, size,
mtime) is not trusted: the step runs qemu-img itself. What no step took is removed
(`discard`), and so are the folders only the pool made. At most `WINDOW` creations are
made ahead at any time (the next ones in plan order), so a stop or a crash leaves few.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.core.model import ObjectKey, VirtsyncError

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from node.storage.base_facts import Stamp

# subprocess, tempfile, the pool and base-image facts are imported where a creation runs: a no-op plan or
# apply imports this module (through disks) and never creates a disk (issue 13).

# qemu-img runs at once: on a 2-core node, process start-up overlaps with the steps'
# own work; more only queue for the CPU.
WORKERS = 2
WINDOW = 8  # creations started and not yet taken: keeps the pool fed, bounds leftovers

_Key = tuple[str, tuple[str, ...]]  # target, qemu-img arguments ("{}" for the file)


def qemu_img(*args: str) -> None:
    import subprocess

    try:
        done = subprocess.run(
            ["qemu-img", *args], capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VirtsyncError(f"qemu-img {args[0]} failed: {exc}") from exc
    if done.returncode != 0:
        raise VirtsyncError(f"qemu-img {args[0]} failed: {done.stderr.strip()}")


def made_temp(target: Path, make: Sequence[str]) -> str:
    """Run `qemu-img create ... TMP ...` into a new temp file beside `target` (`make`
    holds "{}" where the file name goes) and return its name; nothing is left on failure."""
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        qemu_img(*[tmp if a == "{}" else a for a in make])
        os.chmod(tmp, 0o600)  # guest data: not world-readable
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


class _Made:
    """One creation started ahead: for whom, the identity of what it reads, and the
    folders made for it."""

    def __init__(self, owner: ObjectKey, inputs: Sequence[Path],
                 read: tuple[Stamp, ...] | None, folders: Sequence[Path],
                 future: Future[str]) -> None:
        self.owner = owner
        self.inputs = inputs
        self.read = read
        self.folders = folders
        self.future = future

    def unchanged(self) -> bool:
        from node.storage.base_facts import stamps

        now = stamps(str(p) for p in self.inputs)
        return now is not None and now == self.read


class Stager:
    """The creations of one batch started ahead, until their steps take them. Only the
    caller's thread makes or removes folders; the pool only runs qemu-img."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = WORKERS if workers is None else workers
        self._pool: ThreadPoolExecutor | None = None
        self._made: dict[_Key, _Made] = {}
        self._folders: set[Path] = set()  # made for the pool, no step has reached yet
        self._queued: deque[tuple[ObjectKey, Path, tuple[str, ...], Sequence[Path]]] = deque()

    def start(self, owner: ObjectKey, target: Path, make: Sequence[str],
              inputs: Sequence[Path] = ()) -> None:
        """Make `target` with `make` for `owner`'s step, once earlier ones are taken
        (`WINDOW`). `inputs`: the files qemu-img reads (a base image); a change to one
        voids the result."""
        if self.workers >= 1:
            self._queued.append((owner, target, tuple(make), inputs))
            self._fill()

    def _fill(self) -> None:
        while self._queued and len(self._made) < WINDOW:
            self._submit(*self._queued.popleft())

    def _submit(self, owner: ObjectKey, target: Path, make: tuple[str, ...],
                inputs: Sequence[Path]) -> None:
        key = (str(target), make)
        if key in self._made:  # a claim two new VMs share: made once
            return
        missing = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            return  # the step makes it, or says why not
        self._folders.update(missing)
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="qemu-img")
        from node.storage.base_facts import stamps

        read = stamps(str(p) for p in inputs)  # before the run: a change during it counts
        future = self._pool.submit(made_temp, target, list(make))
        self._made[key] = _Made(owner, inputs, read, missing, future)

    def take(self, target: Path, make: Sequence[str]) -> str | None:
        """The temp file made ahead for exactly this creation, or None: then the caller
        runs qemu-img itself (never started, failed, or an input changed since)."""
        self._folders.difference_update((target.parent, *target.parent.parents))
        made = self._made.pop((str(target), tuple(make)), None)
        if made is None:  # not started yet (a step out of plan order): never will be
            self._queued = deque(q for q in self._queued
                                 if (q[1], q[2]) != (target, tuple(make)))
        self._fill()
        if made is None:
            return None
        try:
            tmp = made.future.result()
        except Exception:  # whatever it was, the step's own run meets it again and reports it
            return None
        if not made.unchanged() or not os.path.exists(tmp):
            Path(tmp).unlink(missing_ok=True)
            return None
        return tmp

    def discard(self, owner: ObjectKey | None = None) -> None:
        """Remove what no step took (of `owner`'s step, or all): the temp files, then
        the folders made for the pool that no step reached, when empty and no other
        creation still needs them."""
        self._queued = deque(q for q in self._queued if owner is not None and q[0] != owner)
        left = [k for k, m in self._made.items() if owner is None or m.owner == owner]
        folders = set(self._folders) if owner is None else set()
        for key in left:
            made = self._made.pop(key)
            folders.update(f for f in made.folders if f in self._folders)
            if made.future.cancel():
                continue
            with contextlib.suppress(VirtsyncError, OSError):
                Path(made.future.result()).unlink(missing_ok=True)
        if folders:
            needed = {q for target, _make in self._made for q in Path(target).parents}
            for folder in sorted(folders - needed, key=lambda p: len(p.parts),
                                 reverse=True):  # deepest first
                with contextlib.suppress(OSError):
                    folder.rmdir()
        if owner is None:
            self._folders.clear()
        self._fill()

    def close(self) -> None:
        self.discard()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


__all__ = ["WINDOW", "WORKERS", "Stager", "made_temp", "qemu_img"]
