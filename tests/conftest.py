"""Test-suite-wide set-up: make tests/ importable (refdata) and tools/ (libvirt_daemon,
the real lane's daemon starter), CI strictness, and `run_cli` (the CLI in this process:
exit code, stdout, stderr)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tools"))

from ci_strict import (
    pytest_collectreport,
    pytest_configure,
    pytest_runtest_logreport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

__all__ = ["pytest_collectreport", "pytest_configure", "pytest_runtest_logreport",
           "pytest_sessionfinish", "pytest_terminal_summary"]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    from reconciler.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run
