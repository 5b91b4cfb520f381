"""docs/architecture.md is the map of the code: every `path` and `path:name` it cites
must exist (a module, a folder, a top-level definition, a class's method), and every
import-linter contract in pyproject.toml must be on it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "architecture.md"
CITE = re.compile(r"`((?:reconciler|node|tests|tools|docs|schemas|scripts)/[\w/.-]*\w)"
                  r"(?::(\w+)(?:\.(\w+))?)?`")


def _defines(text: str, name: str, indent: str = "") -> bool:
    return re.search(rf"^{indent}(?:(?:async )?def|class) {name}\b|^{indent}{name}\b\s*[:=]",
                     text, flags=re.M) is not None


def _missing(path: str, name: str | None, member: str | None) -> bool:
    where = REPO / path
    if not where.exists():
        return True
    if name is None:
        return False
    text = where.read_text() if where.is_file() else ""
    if not _defines(text, name):
        return True
    if member is None:
        return False
    start = re.search(rf"^class {name}\b.*$", text, flags=re.M)
    if start is None:
        return True
    body = text[start.end() + 1:]
    end = re.search(r"^\S", body, flags=re.M)  # the next top-level statement
    return not _defines(body[:end.start()] if end else body, member, indent=" {4}")


def test_every_cited_name_exists() -> None:
    cited = list(CITE.finditer(DOC.read_text()))
    assert len(cited) > 50  # the map names the modules and functions it describes
    missing = [m.group(0) for m in cited if _missing(*m.groups())]
    assert not missing, f"docs/architecture.md cites what does not exist: {missing}"


def test_every_import_contract_is_on_the_map() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    names = [c["name"] for c in config["tool"]["importlinter"]["contracts"]]
    text = DOC.read_text()
    assert [n for n in names if n not in text] == []
