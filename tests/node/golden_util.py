"""Golden-file comparison for the node tests (a plain module: conftest names collide)."""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("VIRTSYNC_UPDATE_GOLDEN") == "1"


def assert_golden(name: str, text: str) -> None:
    """Compare `text` with tests/node/golden/<name>; VIRTSYNC_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN_DIR / name
    if UPDATE_GOLDEN:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden file {path} (run with VIRTSYNC_UPDATE_GOLDEN=1)"
    assert text == path.read_text(encoding="utf-8"), f"output differs from golden {path}"
