"""The apply journal (safety rule 7): every side effect is preceded by an entry on disk.

One JSON line per event, appended with a single write: `intent` before the action,
fsync'd before it runs, then `done` or `failed` after it. Those two are not fsync'd
themselves (issue 13: one fsync less per action); the next intent's fsync carries them to
disk, and a `kill -9` loses nothing written. Only a power cut can lose the last ones: the
next apply then reports a finished action as interrupted, observes, and converges, as for
any crash. A crash can tear only the last line, which readers skip. After a `kill -9`, the next apply reads the unfinished intents
(to report them and to adopt what they created) and converges from observed state.

Batches (issue 13): `announce` writes the intents of a batch of actions in one write and
one fsync before the first of them runs. The actions then run in that order, and each
gets its outcome (`done`, `failed`, or `withdrawn` when it will not run: the rest of a
change after a failed step, the rest of the batch after a stop) before the next starts.
So after a crash the first intent of a batch without an outcome is the action that was
in progress, and the later ones never started: `unfinished` reports only that one, as
an unbatched journal would.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.core.model import ObjectKey
from reconciler.execute import journal_closed


@dataclass(frozen=True)
class JournalEntry:
    run: str
    seq: int
    phase: str  # intent | done | failed | withdrawn | resolved (a later run converged past it)
    action: str  # create | update | start | stop | restart | replace | delete
    key: ObjectKey
    detail: str = ""
    at: float = 0.0
    batch: int = 0  # an announced intent: the seq of its batch's first intent; else 0


# Outcomes that close an intent because its action ran or never will: within a batch,
# an intent with one of these lets the next one start (`resolved` says nothing of that).
_RAN_OR_DROPPED = frozenset({"done", "failed", "withdrawn"})


# Fault injection for the crash tests, never set in production: "intent:N" kills this
# process with SIGKILL once the N-th intent is on disk, right before its side effect;
# "action:N" right after the N-th side effect, before its "done" is written.
FAULT_ENV = "VIRTSYNC_FAULT_KILL"


def _fault(phase: str, seq: int) -> None:
    wanted = os.environ.get(FAULT_ENV)
    if wanted and wanted == f"{phase}:{seq}":
        os.kill(os.getpid(), signal.SIGKILL)


def _line(entry: JournalEntry) -> bytes:
    fields: dict[str, object] = {
        "run": entry.run, "seq": entry.seq, "phase": entry.phase, "action": entry.action,
        "kind": entry.key.kind, "namespace": entry.key.namespace, "name": entry.key.name,
        "detail": entry.detail, "at": entry.at,
    }
    if entry.batch:
        fields["batch"] = entry.batch
    return (json.dumps(fields, separators=(",", ":")) + "\n").encode()


def _append(path: Path, entry: JournalEntry, *, sync: bool = True) -> None:
    """One line, one write (fsync'd when `sync`): a crash can tear only this line."""
    _append_raw(path, _line(entry), sync=sync)


def _ends_line(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            if fh.seek(0, os.SEEK_END) == 0:
                return True
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"
    except FileNotFoundError:
        return True


def _append_raw(path: Path, data: bytes, *, sync: bool = True) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """Append-only journal of one apply run, in `<state>/journal/<run>.jsonl`."""

    def __init__(self, state: Path, run: str) -> None:
        self.dir = state / "journal"
        self.run = run
        self.path = self.dir / f"{run}.jsonl"
        self._seq = 0

    def _append(self, entry: JournalEntry) -> None:
        if entry.seq == 1 and entry.phase == "intent":  # a run without actions writes nothing
            self.dir.mkdir(parents=True, exist_ok=True)
        # Rule 7 needs the intent on disk before the action; an outcome only saves the
        # next apply a report (see the module's docstring).
        _append(self.path, entry, sync=entry.phase == "intent")

    def intent(self, action: str, key: ObjectKey, detail: str = "") -> int:
        self._seq += 1
        self._append(JournalEntry(self.run, self._seq, "intent", action, key, detail,
                                  time.time()))
        _fault("intent", self._seq)
        return self._seq

    def announce(self, steps: Sequence[tuple[str, ObjectKey, str]]) -> list[int]:
        """The intents (action, key, detail) of a batch, in the order they will run: one
        write, one fsync (rule 7: all on disk before the first runs). Each must then get
        `begin` right before its action and an outcome before the next one begins."""
        if not steps:
            return []
        first, now = self._seq + 1, time.time()
        entries = [JournalEntry(self.run, first + n, "intent", action, key, detail, now,
                                batch=first)
                   for n, (action, key, detail) in enumerate(steps)]
        self._seq += len(entries)
        if first == 1:  # a run without actions writes nothing
            self.dir.mkdir(parents=True, exist_ok=True)
        _append_raw(self.path, b"".join(_line(e) for e in entries), sync=True)
        return [e.seq for e in entries]

    def begin(self, seq: int) -> None:
        """An announced intent's action is about to run (the crash tests' "intent:N")."""
        _fault("intent", seq)

    def withdraw(self, seq: int, action: str, key: ObjectKey) -> None:
        """An announced action that will not run (not fsync'd, like any outcome)."""
        self._append(JournalEntry(self.run, seq, "withdrawn", action, key, "not run",
                                  time.time()))

    def done(self, seq: int, action: str, key: ObjectKey) -> None:
        _fault("action", seq)
        self._append(JournalEntry(self.run, seq, "done", action, key, "", time.time()))

    def failed(self, seq: int, action: str, key: ObjectKey, detail: str) -> None:
        self._append(JournalEntry(self.run, seq, "failed", action, key, detail, time.time()))


def read_entries(path: Path) -> Iterator[JournalEntry]:
    """Entries of one journal file; a torn last line (crash mid-write) is skipped."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        try:
            raw = json.loads(line)
            yield JournalEntry(raw["run"], int(raw["seq"]), raw["phase"], raw["action"],
                               ObjectKey(raw["kind"], raw["namespace"], raw["name"]),
                               raw.get("detail", ""), float(raw.get("at", 0.0)),
                               int(raw.get("batch", 0)))
        except (ValueError, KeyError, TypeError):
            continue


def unfinished(state: Path) -> list[JournalEntry]:
    """Intents without a matching done/failed in the journals of earlier runs."""
    out: list[JournalEntry] = []
    directory = state / "journal"
    if not directory.is_dir():
        return out
    # Files found closed before and unchanged since are not read again (issue 13).
    known = journal_closed.load(state)
    closed: dict[str, journal_closed.Stamp] = {}
    for path in sorted(directory.glob("*.jsonl")):
        before = journal_closed.stamp(path)
        if before is not None and known.get(path.name) == before:
            closed[path.name] = before
            continue
        open_intents: dict[int, JournalEntry] = {}
        batches: dict[int, list[int]] = {}
        ran_or_dropped: set[int] = set()
        for entry in read_entries(path):
            if entry.phase == "intent":
                open_intents[entry.seq] = entry
                if entry.batch:
                    batches.setdefault(entry.batch, []).append(entry.seq)
            else:
                open_intents.pop(entry.seq, None)
                if entry.phase in _RAN_OR_DROPPED:
                    ran_or_dropped.add(entry.seq)
        for seqs in batches.values():
            # Announced actions run in order, each closed before the next begins: past
            # the first without an outcome, none started.
            started = [s for s in sorted(seqs) if s not in ran_or_dropped][:1]
            for s in seqs:
                if s not in ran_or_dropped and s not in started:
                    open_intents.pop(s, None)
        out.extend(open_intents.values())
        if not open_intents and before is not None and journal_closed.settled(before) \
                and journal_closed.stamp(path) == before:
            closed[path.name] = before
    journal_closed.save(state, closed, known)
    return out


def resolve(state: Path, entries: list[JournalEntry]) -> None:
    """Close earlier runs' unfinished intents once a later run converged past them: a
    `resolved` line in their own journal (the history stays), so they are noted once,
    not on every apply from then on."""
    for e in entries:
        path = state / "journal" / f"{e.run}.jsonl"
        if not _ends_line(path):
            _append_raw(path, b"\n")  # end a line torn by the crash: ours stays whole
        _append(path,
                JournalEntry(e.run, e.seq, "resolved", e.action, e.key,
                             "a later apply converged", time.time()))

