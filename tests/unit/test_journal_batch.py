"""Batched journal intents (issue 13, safety rule 7): `execute` writes the intents of a
batch of changes with one fsync before the first of them runs; after a crash, only the
action that was in progress counts as unfinished (as with one intent per action), and a
stop or a failed step closes the announced steps that will not run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from backends.memory import CALLS, STORE, MemoryBackend

from node.identity.metadata import EVERY_INSTALLATION
from reconciler.core.model import Action, Manifest, ObjectKey, SourceRef
from reconciler.execute import journal
from reconciler.execute.apply import ApplyOptions, execute
from reconciler.execute.journal import Journal, read_entries, resolve, unfinished
from reconciler.planning.classify import Disruption
from reconciler.planning.plan_model import ObjectChange


def _key(name: str) -> ObjectKey:
    return ObjectKey("VirtualMachine", "batch", name)


def _vm(name: str) -> Manifest:
    body = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": "batch"},
            "spec": {"runStrategy": "Halted", "template": {"spec": {}}}}
    return Manifest("kubevirt.io/v1", "VirtualMachine", "batch", name, body,
                    SourceRef(f"{name}.yaml"))


def _change(name: str, *actions: Action) -> ObjectChange:
    return ObjectChange(_key(name), "kubevirt.io/v1", actions, Disruption.NONE, "new object",
                        (), 0, f"{name}.yaml")


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


@pytest.fixture
def memory() -> Iterator[MemoryBackend]:
    STORE.clear()
    CALLS.clear()
    yield MemoryBackend(EVERY_INSTALLATION)
    STORE.clear()
    CALLS.clear()


def _run(tmp_path: Path, backend: MemoryBackend, changes: list[ObjectChange],
         stop_after: int | None = None) -> tuple[Journal, list[str]]:
    j = Journal(tmp_path, "run-1")
    desired = {c.key: _vm(c.key.name) for c in changes}
    words: list[str] = []
    outcomes = execute(changes, backend, desired, revision="r1", journal=j,
                       options=ApplyOptions(), delete_disks=lambda k: False,
                       report=lambda o: words.append(o.word),
                       stop=lambda: stop_after is not None and len(words) >= stop_after)
    assert [o.word for o in outcomes] == words
    return j, words


def test_a_batch_of_intents_is_on_disk_with_one_fsync_before_the_first_action(
        tmp_path: Path, synced: list[bytes], memory: MemoryBackend) -> None:
    changes = [_change(n, Action.CREATE) for n in ("a", "b", "c", "d")]
    seen_at_first: list[int] = []
    real_create = memory.create

    def create(vm: Manifest, **kw: object) -> None:
        if not seen_at_first:
            seen_at_first.append(len(synced))
            assert synced[0].count(b'"phase":"intent"') == 4  # every intent, before any action
        real_create(vm, **kw)  # type: ignore[arg-type]

    memory.create = create  # type: ignore[method-assign]
    j, words = _run(tmp_path, memory, changes)
    assert seen_at_first == [1] and len(synced) == 1  # one fsync for the whole batch
    assert words == ["created"] * 4
    assert unfinished(tmp_path) == []
    phases = [(e.seq, e.phase) for e in read_entries(j.path)]
    assert phases == [(1, "intent"), (2, "intent"), (3, "intent"), (4, "intent"),
                      (1, "done"), (2, "done"), (3, "done"), (4, "done")]


def _announced(tmp_path: Path, names: str) -> Journal:
    j = Journal(tmp_path, "run-k")
    j.announce([("create", _key(n), "none") for n in names])
    return j


def test_after_a_crash_only_the_action_in_progress_is_unfinished(tmp_path: Path) -> None:
    """A kill -9 during the third action of five: the two before it are done, the two
    after it never started. Only the third is reported, as an unbatched journal would."""
    j = _announced(tmp_path, "abcde")
    j.done(1, "create", _key("a"))
    j.done(2, "create", _key("b"))
    assert [(e.seq, e.key.name) for e in unfinished(tmp_path)] == [(3, "c")]
    # Second case: a failed first action, then the kill before the second one ran.
    other = tmp_path / "other"
    k = _announced(other, "xyz")
    k.failed(1, "create", _key("x"), "boom")
    assert [(e.seq, e.key.name) for e in unfinished(other)] == [(2, "y")]


def test_a_resolved_step_does_not_hand_the_note_to_the_next_announced_one(
        tmp_path: Path) -> None:
    """Once a later run resolved the interrupted step, the steps after it still never
    ran: nothing is unfinished, not the next one in line."""
    j = _announced(tmp_path, "abcd")
    j.done(1, "create", _key("a"))
    resolve(tmp_path, unfinished(tmp_path))
    assert unfinished(tmp_path) == []


def test_a_stop_withdraws_the_rest_of_the_batch(tmp_path: Path,
                                                 memory: MemoryBackend) -> None:
    changes = [_change(n, Action.CREATE) for n in ("a", "b", "c", "d")]
    j, words = _run(tmp_path, memory, changes, stop_after=2)
    assert words == ["created", "created"]
    assert [c[1].name for c in CALLS] == ["a", "b"]
    assert unfinished(tmp_path) == []  # a graceful stop leaves nothing to report
    withdrawn = [(e.seq, e.key.name) for e in read_entries(j.path) if e.phase == "withdrawn"]
    assert withdrawn == [(3, "c"), (4, "d")]


def test_a_failed_step_withdraws_the_rest_of_its_change(tmp_path: Path,
                                                         memory: MemoryBackend) -> None:
    """`x` is not in the backend: its update fails, so its start never runs; `y` goes on."""
    changes = [_change("x", Action.UPDATE, Action.START), _change("y", Action.CREATE)]
    j, words = _run(tmp_path, memory, changes)
    assert words == ["failed", "created"]
    assert ("start", _key("x")) not in CALLS
    assert unfinished(tmp_path) == []
    phases = [(e.seq, e.phase) for e in read_entries(j.path) if e.phase != "intent"]
    assert phases == [(1, "failed"), (2, "withdrawn"), (3, "done")]


def test_a_kill_between_a_changes_steps_reports_that_step(tmp_path: Path) -> None:
    """Every step of the batch is announced, so the in-progress one is still the first
    without an outcome when a change has several steps."""
    j = Journal(tmp_path, "run-s")
    j.announce([("update", _key("x"), "live"), ("start", _key("x"), "live"),
                ("create", _key("y"), "none")])
    j.done(1, "update", _key("x"))
    assert [(e.seq, e.action) for e in unfinished(tmp_path)] == [(2, "start")]
