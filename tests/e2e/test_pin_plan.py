"""Rule 17 through the CLI on libvirt's test driver: `virtsync pin` then `plan` is the
documented workflow, so pinning the live identity must plan nothing (no "identity
change", no restart, no start of a stopped VM), in any spelling of the same values."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from e2e.test_apply_testdriver import Tree, domains, run, vm

MAC = re.compile(r'macAddress: "([0-9a-f:]{17})"')
UUID = re.compile(r'uuid: "([0-9a-f-]{36})"')


def files(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def respell(path: Path) -> None:
    """The same pins, spelled as a person might: upper case, MAC with dashes."""
    text = path.read_text()
    text = MAC.sub(lambda m: f'macAddress: "{m.group(1).upper().replace(":", "-")}"', text)
    text = UUID.sub(lambda m: f'uuid: "{m.group(1).upper()}"', text)
    path.write_text(text)


def test_pin_then_plan_is_empty_and_starts_nothing(conn: Any, tree: Tree, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    tree.put(vm("web"))  # Always: running
    tree.put(vm("manual", run="Manual"))  # created stopped
    tree.put(vm("off", run="Halted"))
    assert run("apply", str(tree.root)) == 0
    before = domains(conn)
    assert before == {"e2e_web": True, "e2e_manual": False, "e2e_off": False}

    assert run("pin", str(tree.root)) == 0
    assert "macAddress" in (tree.root / "vms" / "manual.yaml").read_text()
    capsys.readouterr()
    assert run("plan", str(tree.root), "--detailed-exitcode") == 0, capsys.readouterr().out
    assert "No changes" in capsys.readouterr().out

    # The same identity in another spelling is no change either.
    for name in ("web", "manual", "off"):
        respell(tree.root / "vms" / f"{name}.yaml")
    assert run("plan", str(tree.root), "-o", "json") == 0, capsys.readouterr().out
    assert json.loads(capsys.readouterr().out)["changes"] == []

    # Apply after pinning writes nothing and changes no power state (rule 12, rule 16).
    xml = {d.name(): d.XMLDesc() for d in conn.listAllDomains() if d.name().startswith("e2e_")}
    state = files(tmp_path / "state")
    assert run("apply", str(tree.root)) == 0
    assert domains(conn) == before
    assert {d.name(): d.XMLDesc() for d in conn.listAllDomains()
            if d.name().startswith("e2e_")} == xml
    assert files(tmp_path / "state") == state


def test_a_pin_that_differs_from_live_is_an_identity_change(
        conn: Any, tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    body = vm("web")
    tree.put(body)
    assert run("apply", str(tree.root)) == 0
    body["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"] = \
        "02:00:00:00:00:01"
    tree.put(body)
    capsys.readouterr()
    assert run("plan", str(tree.root), "-o", "json") == 1
    (change,) = json.loads(capsys.readouterr().out)["changes"]
    assert change["identity_change"] is True and "restart" in change["actions"]
