"""The CI example and the pre-commit hook call virtsync with options it accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from reconciler.cli import build_parser

ROOT = Path(__file__).parents[2]


def _virtsync_commands(script: str) -> list[list[str]]:
    script = re.sub(r"\$\{\{[^}]*\}\}", "X", script).replace("\\\n", " ")
    out = []
    for line in script.splitlines():
        line = line.strip()
        if line.startswith("virtsync "):
            words = shlex.split(line.split(">", 1)[0])
            out.append([w.replace("$SPECS", "vms") for w in words[1:]])
    return out


def test_workflow_commands_parse() -> None:
    workflow = yaml.safe_load((ROOT / "examples/ci/virtsync-plan.yml").read_text())
    steps = workflow["jobs"]["plan"]["steps"]
    commands = [c for s in steps if "run" in s for c in _virtsync_commands(s["run"])]
    assert {c[0] for c in commands} == {"validate", "plan"}
    parser = build_parser()
    for argv in commands:
        args = parser.parse_args(argv)
        if argv[0] == "plan":
            assert args.output == "markdown" and args.detailed_exitcode and args.base
    body = next(s["with"]["script"] for s in steps if "github-script" in s.get("uses", ""))
    assert "<!-- virtsync-plan -->" in body and "updateComment" in body


def test_pre_commit_hook() -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "virtsync-validate" and hook["pass_filenames"] is False
    entry = shlex.split(hook["entry"])
    assert entry[0] == "virtsync"
    build_parser().parse_args([*entry[1:], "vms"])
