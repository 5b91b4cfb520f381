"""The pre-commit hook calls virtsync with options it accepts (the CI example and the
GitHub Action it uses: tests/packaging/test_action.py)."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from reconciler.cli import build_parser

ROOT = Path(__file__).parents[2]


def test_pre_commit_hook() -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "virtsync-validate" and hook["pass_filenames"] is False
    entry = shlex.split(hook["entry"])
    assert entry[0] == "virtsync"
    build_parser().parse_args([*entry[1:], "vms"])
