"""Golden-file comparison for the node tests (a plain module: conftest names collide)."""

from __future__ import annotations

from pathlib import Path

from golden_files import check_golden

GOLDEN_DIR = Path(__file__).parent / "golden"


def assert_golden(name: str, text: str) -> None:
    """Compare `text` with tests/node/golden/<name> (see tests/golden_files.py)."""
    check_golden(GOLDEN_DIR, name, text)
