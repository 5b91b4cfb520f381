"""Saved plans through the CLI on libvirt's test driver (safety rule 15): `apply --plan`
runs only a plan it re-derives itself, only when the file equals it field for field; the
permission gates judge the re-derived plan, and prune stays in this source's inventory."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from e2e.test_apply_testdriver import Tree, conn, domains, files, run, tree, vm

__all__ = ["conn", "tree"]  # fixtures used by name

Doc = dict[str, Any]


def save_plan(root: Path, plan_file: Path, *flags: str) -> Doc:
    assert run("plan", str(root), "--out-file", str(plan_file), *flags) == 1
    doc: Doc = json.loads(plan_file.read_text())
    return doc


def tamper(plan_file: Path, doc: Doc, edit: Callable[[Doc], None]) -> None:
    edit(doc)
    plan_file.write_text(json.dumps(doc, indent=2))


def change(doc: Doc, name: str) -> Doc:
    (found,) = [c for c in doc["changes"] if c["name"] == name]
    return found


def snapshot(conn: Any, *roots: Path) -> tuple[dict[str, str], list[dict[str, bytes]]]:
    xml = {d.name(): d.XMLDesc() for d in conn.listAllDomains()}
    return xml, [files(r) for r in roots]


def test_disruption_none_on_a_data_loss_prune_is_refused(
        conn: Any, tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Reproduction: `disruption: none` on a data-loss change skipped --allow-data-loss.
    tree.put(vm("keep"))
    tree.put(vm("wipe", annotations={"virtsync.io/disk-policy": "Delete"}))
    assert run("apply", str(tree.root)) == 0
    tree.remove("wipe")
    plan_file = tmp_path / "plan.json"
    doc = save_plan(tree.root, plan_file, "--prune")
    assert change(doc, "wipe")["disruption"] == "data-loss"
    before = snapshot(conn, tree.storage, tmp_path / "state")

    tamper(plan_file, doc, lambda d: change(d, "wipe").update(disruption="none"))
    capsys.readouterr()
    assert run("apply", str(tree.root), "--plan", str(plan_file), "--prune") == 2
    err = capsys.readouterr().err
    assert "refused" in err and "VirtualMachine/e2e/wipe: changes[0].disruption" in err
    assert "'none', re-derived 'data-loss'" in err
    assert snapshot(conn, tree.storage, tmp_path / "state") == before

    # The untampered plan is judged by the gates like any plan: data loss needs its flag.
    save_plan(tree.root, plan_file, "--prune")
    assert run("apply", str(tree.root), "--plan", str(plan_file), "--prune") == 1
    assert "needs --allow-data-loss" in capsys.readouterr().err
    assert snapshot(conn, tree.storage, tmp_path / "state")[0] == before[0]
    assert run("apply", str(tree.root), "--plan", str(plan_file), "--prune",
               "--allow-data-loss") == 0
    assert "e2e_wipe" not in domains(conn)
    assert not any("wipe" in p.name for p in tree.storage.rglob("*.qcow2"))
    assert any("keep" in p.name for p in tree.storage.rglob("*.qcow2"))


def test_restart_downgraded_to_live_is_refused(
        conn: Any, tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree.put(vm("web", cores=1))
    assert run("apply", str(tree.root)) == 0
    tree.put(vm("web", cores=2))
    plan_file = tmp_path / "plan.json"
    doc = save_plan(tree.root, plan_file)
    web = change(doc, "web")
    assert (web["disruption"], web["actions"]) == ("restart", ["update", "restart"])
    before = snapshot(conn, tree.storage, tmp_path / "state")
    domain_id = conn.lookupByName("e2e_web").ID()

    def downgrade(d: Doc) -> None:
        c = change(d, "web")
        c["disruption"] = "live"
        for f in c["fields"]:
            f["disruption"] = "live"
        d["summary"]["restart"], d["summary"]["update"] = 0, 1

    tamper(plan_file, doc, downgrade)
    capsys.readouterr()
    assert run("apply", str(tree.root), "--plan", str(plan_file)) == 2
    err = capsys.readouterr().err
    assert "VirtualMachine/e2e/web: changes[0].disruption: the file says 'live', " \
           "re-derived 'restart'" in err
    assert "summary.restart" in err
    assert snapshot(conn, tree.storage, tmp_path / "state") == before
    assert conn.lookupByName("e2e_web").ID() == domain_id
    assert conn.lookupByName("e2e_web").maxVcpus() == 1


def two_sources(tmp_path: Path) -> tuple[Tree, Tree]:
    """Two source folders on one node, each applied on its own (its own inventory)."""
    a = Tree(tmp_path / "repo-a", tmp_path / "storage")
    b = Tree(tmp_path / "repo-b", tmp_path / "storage")
    a.put(vm("alpha"))
    a.put(vm("gone", run="Halted"))
    b.put(vm("bravo"))
    assert run("apply", str(a.root)) == 0
    assert run("apply", str(b.root)) == 0
    return a, b


def test_prune_key_rewritten_to_another_sources_vm_is_refused(
        conn: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Reproduction: rewriting a prune key deleted a VM applied from another source folder.
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    a, _b = two_sources(tmp_path)
    a.remove("gone")
    plan_file = tmp_path / "plan.json"
    doc = save_plan(a.root, plan_file, "--prune")
    before = snapshot(conn, tmp_path / "storage", tmp_path / "state")

    def retarget(d: Doc) -> None:
        c = change(d, "gone")
        c.update(name="bravo", key="VirtualMachine/e2e/bravo")

    tamper(plan_file, doc, retarget)
    capsys.readouterr()
    assert run("apply", str(a.root), "--plan", str(plan_file), "--prune",
               "--allow-data-loss", "--force-stop") == 2
    err = capsys.readouterr().err
    assert "deletes VirtualMachine/e2e/bravo, not in this source's inventory" in err
    assert snapshot(conn, tmp_path / "storage", tmp_path / "state") == before
    assert {"e2e_alpha", "e2e_gone", "e2e_bravo"} <= set(domains(conn))

    # The same kind of edit naming only the `key` string (kind/namespace/name kept).
    doc = save_plan(a.root, plan_file, "--prune")
    tamper(plan_file, doc, lambda d: change(d, "gone").update(key="VirtualMachine/e2e/bravo"))
    assert run("apply", str(a.root), "--plan", str(plan_file), "--prune") == 2
    assert "deletes VirtualMachine/e2e/bravo" in capsys.readouterr().err
    assert snapshot(conn, tmp_path / "storage", tmp_path / "state") == before
    # Untampered, the plan prunes exactly this source's removed VM.
    save_plan(a.root, plan_file, "--prune")
    assert run("apply", str(a.root), "--plan", str(plan_file), "--prune") == 0
    assert set(domains(conn)) == {"e2e_alpha", "e2e_bravo"}


def test_update_rewritten_to_delete_is_refused(
        conn: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Second case: the VM is in this source's inventory and still in git; a label edit's
    # `update` becomes `delete` (and an extra deletion of the other source's VM is added).
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    a, _b = two_sources(tmp_path)
    labelled = vm("alpha")
    labelled["metadata"]["labels"] = {"tier": "web"}
    a.put(labelled)
    plan_file = tmp_path / "plan.json"
    doc = save_plan(a.root, plan_file, "--prune")
    assert change(doc, "alpha")["actions"] == ["update"]
    before = snapshot(conn, tmp_path / "storage", tmp_path / "state")

    tamper(plan_file, doc, lambda d: change(d, "alpha").update(actions=["delete"]))
    capsys.readouterr()
    assert run("apply", str(a.root), "--plan", str(plan_file), "--prune",
               "--allow-data-loss") == 2
    err = capsys.readouterr().err
    assert "VirtualMachine/e2e/alpha: changes[0].actions[0]: the file says 'delete', " \
           "re-derived 'update'" in err
    assert snapshot(conn, tmp_path / "storage", tmp_path / "state") == before

    doc = save_plan(a.root, plan_file, "--prune")
    extra = dict(change(doc, "alpha"), actions=["delete"], name="bravo",
                 key="VirtualMachine/e2e/bravo")
    tamper(plan_file, doc, lambda d: d["changes"].append(extra))
    assert run("apply", str(a.root), "--plan", str(plan_file), "--prune",
               "--allow-data-loss") == 2
    assert "deletes VirtualMachine/e2e/bravo" in capsys.readouterr().err
    assert snapshot(conn, tmp_path / "storage", tmp_path / "state") == before
    assert {"e2e_alpha", "e2e_bravo"} <= set(domains(conn))


def test_plan_and_apply_must_agree_on_prune(
        conn: Any, tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A plan reviewed without --prune shows deletions as skipped: it cannot prune.
    tree.put(vm("web"))
    tree.put(vm("old", run="Halted"))
    assert run("apply", str(tree.root)) == 0
    tree.remove("old")
    plan_file = tmp_path / "plan.json"
    save_plan(tree.root, plan_file)
    capsys.readouterr()
    assert run("apply", str(tree.root), "--plan", str(plan_file), "--prune") == 2
    assert "both use --prune" in capsys.readouterr().err
    assert "e2e_old" in domains(conn)


def test_a_plan_file_of_format_1_is_refused_plan_again(
        conn: Any, tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Issue 9: format 2 writes a replace as ["delete", "create"]; a file written by an
    # older virtsync is not read under the new meaning, however it is edited.
    tree.put(vm("web"))
    assert run("apply", str(tree.root)) == 0
    tree.put(vm("web", annotations={"note": "changed"}))
    plan_file = tmp_path / "plan.json"
    doc = save_plan(tree.root, plan_file)
    before = snapshot(conn, tree.storage, tmp_path / "state")
    tamper(plan_file, doc, lambda d: d.update(format_version="1"))
    capsys.readouterr()
    assert run("apply", str(tree.root), "--plan", str(plan_file)) == 2
    err = capsys.readouterr().err
    assert "not a virtsync plan file of format version 2 (it is of format version 1): " \
           "plan again" in err, err
    assert snapshot(conn, tree.storage, tmp_path / "state") == before
