"""Test-suite-wide set-up: make tests/ importable (refdata) and tools/ (libvirt_daemon,
the real lane's daemon starter), and CI strictness."""

from __future__ import annotations

import sys
from pathlib import Path

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
