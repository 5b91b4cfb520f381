"""The code digest a stored answer is keyed on: it changes with a named module's source,
a schema or the seed, and with nothing else (issue 13: stored verdicts must not outlive
the code they stand for)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.check import SCHEMA_DIR
from reconciler.core import digest

NAMED = ("planning.plan", "core.power")


@pytest.fixture
def package(tmp_path: Path) -> Path:
    copy = tmp_path / "reconciler"
    shutil.copytree(digest.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(SCHEMA_DIR, tmp_path / "schemas")
    return copy


def _digest(package: Path, seed: str = "1.0", modules: tuple[str, ...] = NAMED) -> str:
    digest.code_digest.cache_clear()  # read the files again
    return digest.code_digest(seed, modules, package.parent / "schemas", package)


def test_a_named_module_schema_or_seed_changes_it(package: Path) -> None:
    before = _digest(package)
    assert _digest(package, seed="1.1") != before
    power = package / "core" / "power.py"
    power.write_text(power.read_text() + "\n# changed\n")
    after_module = _digest(package)
    assert after_module != before
    schema = sorted((package.parent / "schemas").glob("*.json"))[0]
    schema.write_text(schema.read_text() + "\n")
    assert _digest(package) != after_module


def test_a_module_not_named_leaves_it(package: Path) -> None:
    before = _digest(package)
    other = package / "planning" / "classify.py"
    other.write_text(other.read_text() + "\n# changed\n")
    assert _digest(package) == before


def test_package_modules_lists_every_module_once(package: Path) -> None:
    names = digest.package_modules(package)
    assert "planning.plan" in names and "core.digest" in names and "__init__" in names
    assert "check.__init__" in names and len(set(names)) == len(names) == len(
        list(package.rglob("*.py")))
    assert list(names) == sorted(names)
