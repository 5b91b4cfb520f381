"""The apply journal's durability (safety rule 7): an intent is on disk (fsync'd) before
its action runs; an outcome (`done`, `failed`) is written whole but rides on the next
intent's fsync (issue 13), and a reader sees it at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.core.model import ObjectKey
from reconciler.execute import journal
from reconciler.execute.journal import Journal, read_entries, unfinished

KEY = ObjectKey("VirtualMachine", "default", "web")
OTHER = ObjectKey("VirtualMachine", "team-a", "db")


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The journal file's content at each fsync of it."""
    seen: list[bytes] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        real(fd)
        seen.append(Path(f"/proc/self/fd/{fd}").read_bytes())

    monkeypatch.setattr(journal.os, "fsync", fsync)
    return seen


def test_each_intent_is_on_disk_before_its_action(tmp_path: Path, synced: list[bytes]) -> None:
    j = Journal(tmp_path, "run-1")
    first = j.intent("create", KEY)
    assert len(synced) == 1 and b'"phase":"intent"' in synced[0]
    j.done(first, "create", KEY)
    assert len(synced) == 1  # the outcome waits for the next intent's fsync
    second = j.intent("delete", OTHER, "policy Delete")
    assert len(synced) == 2
    # The second fsync carried the first action's outcome and the second intent.
    assert synced[1].count(b"\n") == 3 and b'"phase":"done"' in synced[1]
    j.failed(second, "delete", OTHER, "in use")
    assert len(synced) == 2


def test_outcomes_are_read_back_at_once(tmp_path: Path, synced: list[bytes]) -> None:
    j = Journal(tmp_path, "run-2")
    a = j.intent("create", KEY)
    j.done(a, "create", KEY)
    b = j.intent("stop", OTHER)
    j.failed(b, "stop", OTHER, "timed out")
    phases = [(e.seq, e.phase) for e in read_entries(j.path)]
    assert phases == [(1, "intent"), (1, "done"), (2, "intent"), (2, "failed")]
    assert unfinished(tmp_path) == []


def test_an_outcome_lost_with_the_power_leaves_its_intent_unfinished(
        tmp_path: Path, synced: list[bytes]) -> None:
    """What a power cut can do to an unsynced outcome: the disk holds the last fsync'd
    content. The next apply then reports the action as interrupted and converges."""
    j = Journal(tmp_path, "run-3")
    seq = j.intent("create", KEY)
    j.done(seq, "create", KEY)
    j.path.write_bytes(synced[-1])  # the disk as the last fsync left it
    assert [(e.seq, e.action, e.key) for e in unfinished(tmp_path)] == [(1, "create", KEY)]
