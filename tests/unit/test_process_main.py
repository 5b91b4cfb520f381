"""The process entry point keeps the garbage collector out of start-up only: the command
itself runs with it on, and start-up's objects are frozen (never scanned again)."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Iterator

import pytest

from reconciler.cli import process_main, validate_cmd
from reconciler.core.model import ExitCode


@pytest.fixture
def restore_gc() -> Iterator[None]:
    yield
    gc.unfreeze()  # this test process's objects: collectable again
    gc.enable()


@pytest.mark.usefixtures("restore_gc")
def test_the_command_runs_with_the_collector_on_after_start_up_is_frozen(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def run(_args: argparse.Namespace) -> ExitCode:
        seen.update(enabled=gc.isenabled(), frozen=gc.get_freeze_count())
        return ExitCode.OK

    monkeypatch.setattr(validate_cmd, "run", run)
    monkeypatch.setattr(sys, "argv", ["virtsync", "validate", "."])
    gc.unfreeze()
    assert process_main() == ExitCode.OK
    assert seen["enabled"] is True
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 1000


@pytest.mark.usefixtures("restore_gc")
def test_a_commands_preload_runs_before_the_freeze(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A host-mode plan imports its stack at start-up (collector off, then frozen); `run`
    gets the same args either way (what a git-mode plan loads: test_noop_imports)."""
    from reconciler.cli import plan_cmd

    seen: list[tuple[str, object, object]] = []
    preload = plan_cmd.preload

    def spy_preload(args: argparse.Namespace) -> None:
        seen.append(("preload", gc.isenabled(), args.base))
        preload(args)

    def run(args: argparse.Namespace) -> ExitCode:
        seen.append(("run", gc.isenabled(), args.base))
        return ExitCode.OK

    monkeypatch.setattr(plan_cmd, "preload", spy_preload)
    monkeypatch.setattr(plan_cmd, "run", run)
    monkeypatch.setattr(sys, "argv", ["virtsync", "plan", ".", "--base", "HEAD"])
    gc.unfreeze()
    assert process_main() == ExitCode.OK
    gc.unfreeze()
    monkeypatch.setattr(sys, "argv", ["virtsync", "plan", "."])
    assert process_main() == ExitCode.OK
    assert {"reconciler.execute.planmemo", "reconciler.cli.common"} <= set(sys.modules)
    assert seen == [("preload", False, "HEAD"), ("run", True, "HEAD"),
                    ("preload", False, None), ("run", True, None)]
