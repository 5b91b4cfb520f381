"""argparse would take any unambiguous prefix of a long option: `apply --force` silently
became `--force-stop`. Every parser refuses abbreviations; the full spelling still works."""

from __future__ import annotations

import pytest

from reconciler.cli import build_parser, main


@pytest.mark.parametrize(("argv", "full"), [
    (["apply", "--force"], "--force-stop"),
    (["apply", "--allow-res"], "--allow-restart"),
    (["plan", "--detailed"], "--detailed-exitcode"),
    (["watch", "/nonexistent/virtsync-tree", "--interv", "5"], "--interval"),
    (["stop", "vm", "--grace", "5"], "--grace-period"),
    (["pin", "--storage", "/x"], "--storage-dir"),
])
def test_abbreviated_options_are_rejected(argv: list[str], full: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    abbreviation = next(a for a in argv if a.startswith("--"))
    assert "unrecognized arguments" in err and abbreviation in err
    # The full spelling is an option of that command (so the prefix was an abbreviation).
    assert any(full in a.option_strings for a in _sub(argv[0])._actions)


def _sub(word: str):  # type: ignore[no-untyped-def]
    parser = build_parser(word)
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices[word]  # type: ignore[index]


def test_every_parser_refuses_abbreviations() -> None:
    parser = build_parser()
    assert parser.allow_abbrev is False
    action = next(a for a in parser._actions if a.dest == "command")
    for word, sub in action.choices.items():  # type: ignore[union-attr]
        assert sub.allow_abbrev is False, word
