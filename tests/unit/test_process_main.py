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
