"""action.yml, the composite GitHub Action, checked statically (no runner here): it parses,
every `inputs.X` it uses is declared, and every `virtsync` command line it runs is one
the CLI accepts; examples/ci uses it with inputs it declares."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from reconciler.backends import registry
from reconciler.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def _action() -> dict[str, Any]:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert isinstance(action, dict)
    return action


def _commands(script: str) -> list[list[str]]:
    """The argv of each `virtsync ...` line, shell variables given sample values."""
    out = []
    for line in script.splitlines():
        line = line.strip()
        if not line.startswith("virtsync "):
            continue
        line = line.split(" > ", 1)[0].replace('"${target[@]}"', "")
        words = shlex.split(re.sub(r"\$\{?(\w+)\}?", r"X_\1", line))
        out.append(words[1:])
    return out


def test_composite_with_declared_inputs_and_outputs() -> None:
    action = _action()
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    text = (ROOT / "action.yml").read_text()
    used = set(re.findall(r"inputs\.([\w-]+)", text))
    assert used == set(action["inputs"]), "inputs used and declared differ"
    assert set(action["inputs"]) >= {"path", "base", "python-version", "comment"}
    for output in action["outputs"].values():
        step_id = re.fullmatch(r"\$\{\{ steps\.(\w+)\.outputs\.\w+ \}\}", output["value"])
        assert step_id and any(s.get("id") == step_id[1] for s in steps)
    # run steps of a composite action must name their shell
    assert all(s.get("shell") == "bash" for s in steps if "run" in s)
    # user-controlled values reach the shell through env, never spliced into the script
    for step in steps:
        assert not EXPR.search(step.get("run", "")), step.get("name")


def test_installs_its_own_checkout_and_runs_validate_then_plan() -> None:
    steps = _action()["runs"]["steps"]
    install = next(s for s in steps if "pip install" in s.get("run", ""))
    assert install["env"]["ACTION_PATH"] == "${{ github.action_path }}"
    assert '"$ACTION_PATH"' in install["run"]
    commands = [c for s in steps for c in _commands(s.get("run", ""))]
    assert [c[0] for c in commands] == ["validate", "plan"]
    parser = build_parser()
    for argv in commands:
        args = parser.parse_args(argv)
        if argv[0] == "plan":
            assert args.output == "markdown" and args.detailed_exitcode and args.base
            assert args.out_file
    # the target input is passed as --target, with every registered backend accepted
    plan = commands[1]
    for name in registry.names():
        assert parser.parse_args([*plan, "--target", name]).target == name


def test_comment_step_updates_its_own_comment() -> None:
    steps = _action()["runs"]["steps"]
    post = next(s for s in steps if s.get("uses", "").startswith("actions/github-script@"))
    assert "inputs.comment == 'true'" in post["if"]
    script = post["with"]["script"]
    assert "<!-- virtsync-plan -->" in script and "updateComment" in script
    assert post["env"]["PLAN_MD"] == "${{ steps.plan.outputs.markdown }}"


def test_example_workflow_is_one_uses_line() -> None:
    workflow = yaml.safe_load((ROOT / "examples/ci/virtsync-plan.yml").read_text())
    steps = workflow["jobs"]["plan"]["steps"]
    (use,) = [s for s in steps if re.fullmatch(r"[^/]+/virtsync@\S+", s.get("uses", ""))]
    assert set(use.get("with", {})) <= set(_action()["inputs"])
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0
    assert not any("run" in s for s in steps)  # nothing left for the user to script
    assert workflow["permissions"]["pull-requests"] == "write"
