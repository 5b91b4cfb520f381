"""Every broken spec under tests/fixtures/invalid/ fails `virtsync validate` at exactly the
place its first line promises:  # expect: LINE:COL JSON.PATH RULE"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reconciler.cli import main

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "invalid"
EXPECT = re.compile(r"^# expect: (\d+):(\d+) (\S+) (\S+)\s*$")
CANARY = "CANARY-7f3a"


def _cases() -> list[Path]:
    return sorted(FIXTURES.glob("*.yaml"))


def test_there_are_enough_fixtures() -> None:
    assert len(_cases()) >= 30


@pytest.mark.parametrize("fixture", _cases(), ids=lambda p: p.name)
def test_fixture_fails_where_promised(fixture: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path))
    monkeypatch.chdir(FIXTURES)
    header = fixture.read_bytes().split(b"\n", 1)[0].decode()
    m = EXPECT.match(header)
    assert m, f"{fixture.name}: first line must be '# expect: LINE:COL PATH RULE'"
    line, col, path, rule = int(m[1]), int(m[2]), m[3], m[4]

    code = main(["validate", "--format", "json", fixture.name])
    out = capsys.readouterr()
    assert code == 1, out.err
    report = json.loads(out.out)
    assert report["valid"] is False
    first = report["errors"][0]
    assert (first["file"], first["line"], first["column"], first["path"], first["rule"]) == (
        fixture.name, line, col, path, rule), first
    # Secrets planted in fixtures never surface, in any format.
    for fmt in ("text", "json", "github"):
        main(["validate", "--format", fmt, "--no-cache", fixture.name])
        both = capsys.readouterr()
        assert CANARY not in both.out + both.err
