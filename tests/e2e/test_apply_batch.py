"""Batched durable writes through the CLI on the test driver (issue 13): a batch of new
VMs has its identities and cloud-init seeds on disk before the first domain is defined
(rules 7 and 17); a VM that fails before its identity gets none, as before; a kill -9
in the middle of a batch leaves exactly the step in progress to report, once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from e2e.test_apply_testdriver import Tree, conn, run, tree, vm
from e2e.test_storage_ownership import _apply_killed
from node.cluster.host import NodeHost
from reconciler.execute.journal import read_entries

__all__ = ["conn", "tree"]  # fixtures used below


def _record(tmp_path: Path, name: str) -> Path:
    return tmp_path / "state" / ".virtsync-identity" / "e2e" / f"{name}.json"


def test_a_batch_is_on_disk_before_its_first_define(
        conn: Any, tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    names = ["alpha", "bravo", "charlie", "delta"]
    for n in names:
        tree.put(vm(n, run="Halted", user_data="#cloud-config\nusers: []\n"))
    lost = vm("echo", run="Halted", user_data="#cloud-config\n")
    lost["spec"]["template"]["spec"]["volumes"][1] = {
        "name": "data", "persistentVolumeClaim": {"claimName": "nowhere"}}
    tree.put(lost)
    seen: list[dict[str, tuple[bool, bool]]] = []
    real = NodeHost.define_xml

    def define_xml(self: NodeHost, xml: str, key: Any) -> Any:
        if not seen:
            seen.append({n: (_record(tmp_path, n).exists(),
                             (tree.storage / "e2e" / "vms" / n / "cidata-ci.iso").exists())
                         for n in names})
        return real(self, xml, key)

    monkeypatch.setattr(NodeHost, "define_xml", define_xml)
    assert run("apply", str(tree.root), "--auto-approve") == 1  # echo's claim is missing
    out = capsys.readouterr().out
    assert all(f"VirtualMachine/e2e/{n} created" in out for n in names)
    assert seen == [{n: (True, True) for n in names}]
    # Refused before its identity, as when each define wrote its own: nothing stored.
    assert not _record(tmp_path, "echo").exists()
    assert not (tree.storage / "e2e" / "vms" / "echo").exists()


@pytest.mark.parametrize(("fault", "nth"), [("intent:3", 3), ("action:4", 4)])
def test_a_kill_mid_batch_leaves_one_step_to_report(
        conn: Any, tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        fault: str, nth: int) -> None:
    for n in ("k1", "k2", "k3", "k4", "k5"):
        tree.put(vm(n, run="Halted"))
    _apply_killed(tree, fault)
    (journal,) = (tmp_path / "state" / "journal").glob("*.jsonl")
    intents = [e for e in read_entries(journal) if e.phase == "intent"]
    assert len(intents) == 5 and all(e.batch == 1 for e in intents)  # one batch, announced
    in_progress = intents[nth - 1].key
    capsys.readouterr()

    assert run("apply", str(tree.root)) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "an earlier apply stopped during" in line]
    assert notes == [f"virtsync: note: an earlier apply stopped during create of "
                     f"{in_progress}; converging from live state"]
    assert "converged past 1 step(s)" in err

    assert run("apply", str(tree.root)) == 0
    err = capsys.readouterr().err
    assert "earlier apply stopped" not in err and "converged past" not in err
