"""Journals found closed are not read again, and any change to one is read (issue 13:
a 20,000-line journal cost ~0.27 s on every later apply). The memo may only skip work:
what `unfinished` reports must be what a full read reports."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.core.model import ObjectKey
from reconciler.execute import journal, journal_closed
from reconciler.execute.journal import Journal, unfinished

KEY = ObjectKey("VirtualMachine", "default", "web")
OTHER = ObjectKey("VirtualMachine", "team-a", "db")


@pytest.fixture(autouse=True)
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written by a test are seconds old at most: count them as settled (the
    window has a test of its own)."""
    monkeypatch.setattr(journal_closed, "RACY_WINDOW_NS", -10**12)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the journal files `unfinished` parsed."""
    seen: list[str] = []
    real = journal.read_entries

    def read_entries(path: Path):  # type: ignore[no-untyped-def]
        seen.append(path.name)
        return real(path)

    monkeypatch.setattr(journal, "read_entries", read_entries)
    return seen


def finished_run(state: Path, run: str, key: ObjectKey = KEY) -> Path:
    j = Journal(state, run)
    seq = j.intent("create", key)
    j.done(seq, "create", key)
    return j.path


def reopened(text: bytes) -> bytes:
    """The same journal, as long, with its outcome for another step."""
    intent, outcome = text.splitlines(keepends=True)
    assert b'"seq":1,' in outcome
    return intent + outcome.replace(b'"seq":1,', b'"seq":7,')


def full_read(state: Path) -> list[journal.JournalEntry]:
    journal_closed.memo_path(state).unlink(missing_ok=True)
    return unfinished(state)


def test_a_closed_journal_is_read_once(tmp_path: Path, reads: list[str]) -> None:
    finished_run(tmp_path, "run-1")
    assert unfinished(tmp_path) == []
    assert unfinished(tmp_path) == []
    assert reads == ["run-1.jsonl"]


def test_a_journal_with_an_unfinished_intent_is_read_every_time(
        tmp_path: Path, reads: list[str]) -> None:
    Journal(tmp_path, "run-1").intent("create", KEY)
    for _ in range(2):
        assert [(e.seq, e.key) for e in unfinished(tmp_path)] == [(1, KEY)]
    assert reads == ["run-1.jsonl", "run-1.jsonl"]


def test_an_intent_appended_to_a_closed_journal_is_found(tmp_path: Path) -> None:
    path = finished_run(tmp_path, "run-1")
    assert unfinished(tmp_path) == []
    line = json.dumps({"run": "run-1", "seq": 2, "phase": "intent", "action": "delete",
                       "kind": OTHER.kind, "namespace": OTHER.namespace,
                       "name": OTHER.name})
    with path.open("a") as fh:
        fh.write(line + "\n")
    assert [(e.seq, e.key) for e in unfinished(tmp_path)] == [(2, OTHER)]
    assert unfinished(tmp_path) == full_read(tmp_path)


def test_a_closed_journal_rewritten_in_place_with_its_size_and_mtime_is_read(
        tmp_path: Path) -> None:
    """Same name, size, mtime and inode: only the change time tells (e.g. a restore that
    keeps timestamps). The rewrite gives the outcome another seq: the intent is open again."""
    path = finished_run(tmp_path, "run-1")
    assert unfinished(tmp_path) == []
    st = path.stat()
    with path.open("r+b") as fh:  # same inode, same size
        fh.write(reopened(path.read_bytes()))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert [(e.seq, e.key) for e in unfinished(tmp_path)] == [(1, KEY)]


def test_a_closed_journal_replaced_by_another_file_is_read(tmp_path: Path) -> None:
    path = finished_run(tmp_path, "run-1")
    assert unfinished(tmp_path) == []
    st = path.stat()
    other = tmp_path / "other.jsonl"
    other.write_bytes(reopened(path.read_bytes()))
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, path)
    assert [(e.seq, e.key) for e in unfinished(tmp_path)] == [(1, KEY)]


def test_only_the_changed_journal_is_read_again(tmp_path: Path, reads: list[str]) -> None:
    finished_run(tmp_path, "run-1")
    second = finished_run(tmp_path, "run-2", OTHER)
    assert unfinished(tmp_path) == []
    with second.open("a") as fh:
        fh.write("\n")
    assert unfinished(tmp_path) == []
    assert reads == ["run-1.jsonl", "run-2.jsonl", "run-2.jsonl"]


@pytest.mark.parametrize("memo", [b"", b"{", b"[]", b'{"format":1,"closed":{"run-1.jsonl":1}}',
                                  b'{"format":99,"closed":{}}'])
def test_a_damaged_memo_means_a_full_read(tmp_path: Path, memo: bytes) -> None:
    Journal(tmp_path, "run-1").intent("create", KEY)
    journal_closed.memo_path(tmp_path).parent.mkdir(parents=True, exist_ok=True)
    journal_closed.memo_path(tmp_path).write_bytes(memo)
    assert [(e.seq, e.key) for e in unfinished(tmp_path)] == [(1, KEY)]


def test_resolved_intents_close_their_journal(tmp_path: Path, reads: list[str]) -> None:
    """A crash's journal is read until a later run resolves it, then not again."""
    Journal(tmp_path, "run-1").intent("create", KEY)
    earlier = unfinished(tmp_path)
    journal.resolve(tmp_path, earlier)
    assert unfinished(tmp_path) == []
    assert unfinished(tmp_path) == []
    assert reads == ["run-1.jsonl", "run-1.jsonl"]


def test_a_journal_changed_within_the_racy_window_is_not_remembered(
        tmp_path: Path, reads: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A write in the same clock tick as the stat could leave the times unchanged: a file
    that changed this recently is read again next time."""
    monkeypatch.setattr(journal_closed, "RACY_WINDOW_NS", 2_000_000_000)
    finished_run(tmp_path, "run-1")
    assert unfinished(tmp_path) == []
    assert unfinished(tmp_path) == []
    assert reads == ["run-1.jsonl", "run-1.jsonl"]
