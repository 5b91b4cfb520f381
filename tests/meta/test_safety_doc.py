"""docs/safety.md names, for every safety rule, the tests that prove it: each named
test must exist, and no rule may be left without one (the doc would otherwise promise
what nothing checks)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "safety.md"
REF = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")


def _sections() -> dict[int, str]:
    parts = re.split(r"^## (\d+)\. ", DOC.read_text(), flags=re.M)
    return {int(n): body for n, body in zip(parts[1::2], parts[2::2], strict=True)}


def test_every_named_test_exists() -> None:
    missing = []
    for m in REF.finditer(DOC.read_text()):
        path, name = REPO / m.group(1), m.group(2)
        if not path.is_file() or (name and not re.search(rf"^def {name}\(", path.read_text(),
                                                           flags=re.M)):
            missing.append(m.group(0))
    assert not missing, f"docs/safety.md names tests that do not exist: {missing}"


def test_every_rule_names_a_test() -> None:
    sections = _sections()
    assert sorted(sections) == list(range(1, 19))
    assert [n for n, body in sections.items() if not REF.search(body)] == []
