"""Golden-file comparison shared by every golden directory (issue 14).

A golden is compared, never silently rewritten: with VIRTSYNC_UPDATE_GOLDEN=1 a golden
that differs (or is missing) is written and the test FAILS, so a regeneration run can
never pass a regression; under CI (CI=true) regenerating is refused outright. Every
file in a golden directory must be used by a test (`assert_no_orphans`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pytest

UPDATE_ENV = "VIRTSYNC_UPDATE_GOLDEN"


def updating() -> bool:
    return os.environ.get(UPDATE_ENV) == "1"


def under_ci() -> bool:
    return os.environ.get("CI") == "true"


def check_golden(directory: Path, name: str, actual: str) -> None:
    path = directory / name
    if updating():
        if under_ci():
            pytest.fail(f"{UPDATE_ENV}=1 under CI: goldens are compared in CI, never "
                        "regenerated")
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old != actual:
            path.write_text(actual, encoding="utf-8")
            pytest.fail(f"golden {path} {'created' if old is None else 'rewritten'}: review "
                        f"`git diff`, then run again without {UPDATE_ENV}")
        return
    assert path.exists(), (f"missing golden file {path}; create it with {UPDATE_ENV}=1 "
                           "(never under CI) and review it")
    assert actual == path.read_text(encoding="utf-8"), f"output differs from golden {path}"


def assert_no_orphans(directory: Path, expected: Iterable[str]) -> None:
    """Fail on files in `directory` that no golden test compares against."""
    wanted = set(expected)
    orphans = sorted(p.name for p in directory.iterdir() if p.name not in wanted)
    assert not orphans, (f"orphaned golden file(s) in {directory} that no test uses: "
                         f"{', '.join(orphans)}; delete them or add their case back")
