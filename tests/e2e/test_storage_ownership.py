"""Storage ownership through the CLI on libvirt's test driver (fast lane), issue 8:
a DataVolume has one owner per namespace (validate refuses a second one, naming both
places); prune deletes only files the pruned VM owns and nothing else references
(safety rule 13), and the plan lists them; a missing disk file is reported, never
"up to date"; refusals exit 1; --max-prune 0 means none."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.test_apply_testdriver import Tree, conn, domains, run, tree, vm

__all__ = ["conn", "tree"]  # fixtures used below


def _write(folder: Path, name: str, docs: list[dict[str, Any]]) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def _line_of(path: Path, needle: str, nth: int = 1) -> int:
    hits = [i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    return hits[nth - 1]


def _validate_json(folder: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    code = run("validate", "--format", "json", "--no-cache", str(folder))
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["valid"] is False, report
    return list(report["errors"])


# ------------------------------------------------------------------ one owner per DataVolume


def test_two_vms_owning_one_datavolume_are_refused_naming_both_places(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    first = vm("alpha")
    second = vm("beta")
    second["spec"]["dataVolumeTemplates"][0]["metadata"]["name"] = "alpha-data"
    a = _write(tmp_path, "a.yaml", [first])
    b = _write(tmp_path, "b.yaml", [second])
    errors = _validate_json(tmp_path, capsys)
    assert [e["rule"] for e in errors] == ["semantic.duplicate-datavolume"]
    err = errors[0]
    # The second claim is the error; its message names the first file and line.
    assert err["file"].endswith("b.yaml")
    assert err["line"] == _line_of(b, "name: alpha-data")
    assert err["path"] == "spec.dataVolumeTemplates[0].metadata.name"
    assert f"a.yaml:{_line_of(a, 'name: alpha-data')}" in err["message"]
    assert "VirtualMachine/e2e/alpha" in err["message"]


def test_vm_template_named_like_a_datavolume_document_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Second case: the other owner is a DataVolume document, in the same file, and the
    template comes second in document order."""
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    dv = {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
          "metadata": {"name": "shared", "namespace": "e2e"},
          "spec": {"source": {"blank": {}},
                   "storage": {"resources": {"requests": {"storage": "16Mi"}}}}}
    owner = vm("gamma")
    owner["spec"]["dataVolumeTemplates"][0]["metadata"]["name"] = "shared"
    path = _write(tmp_path, "both.yaml", [dv, owner])
    errors = _validate_json(tmp_path, capsys)
    assert [e["rule"] for e in errors] == ["semantic.duplicate-datavolume"]
    assert errors[0]["line"] == _line_of(path, "name: shared", 2)
    assert f"line {_line_of(path, 'name: shared', 1)}" in errors[0]["message"]
    assert "DataVolume/e2e/shared" in errors[0]["message"]


def test_same_template_name_in_other_namespaces_and_shared_mounts_are_valid(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Uniqueness is per namespace, and mounting another VM's claim is legal (it is the
    owner that must be unique)."""
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    other = vm("alpha")
    other["metadata"]["namespace"] = "elsewhere"
    reader = vm("reader")
    reader["spec"]["template"]["spec"]["volumes"].append(
        {"name": "peer", "persistentVolumeClaim": {"claimName": "alpha-data"}})
    reader["spec"]["template"]["spec"]["domain"]["devices"]["disks"].append(
        {"name": "peer", "disk": {"bus": "virtio"}})
    _write(tmp_path, "a.yaml", [vm("alpha")])
    _write(tmp_path, "b.yaml", [other, reader])
    assert run("validate", str(tmp_path), "--no-cache") == 0, capsys.readouterr()


# ------------------------------------------------------------------ the prune cap


@pytest.mark.parametrize("removed", [1, 2])
def test_max_prune_zero_means_none_and_a_capped_prune_exits_1(
        conn: Any, tree: Tree, removed: int, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 14: `--max-prune 0` must not fall back to the default cap (which would allow
    one of 10 here). Issue 8: a refused prune is a refusal (exit 1), not an error (2)."""
    for i in range(10):
        tree.put(vm(f"cap{i}", run="Halted"))
    assert run("apply", str(tree.root)) == 0
    for i in range(removed):
        tree.remove(f"cap{i}")
    before = set(domains(conn))
    capsys.readouterr()
    assert run("apply", str(tree.root), "--prune", "--max-prune", "0") == 1
    err = capsys.readouterr().err
    assert f"pruning {removed} objects is over the cap (0)" in err
    assert "nothing was changed" in err
    assert set(domains(conn)) == before
    assert run("apply", str(tree.root), "--prune", "--max-prune", "-1") == 2  # usage error
    assert set(domains(conn)) == before
    assert run("apply", str(tree.root), "--prune", "--max-prune", str(removed)) == 0
    assert len(domains(conn)) == 10 - removed


# ------------------------------------------------------------------ prune deletes only what it owns

DELETE = {"virtsync.io/disk-policy": "Delete"}


def _mount(body: dict[str, Any], volume: dict[str, Any]) -> dict[str, Any]:
    """Add a disk and volume to a VM body (e.g. another VM's claim)."""
    tmpl = body["spec"]["template"]["spec"]
    tmpl["volumes"].append(volume)
    tmpl["domain"]["devices"]["disks"].append({"name": volume["name"],
                                               "disk": {"bus": "virtio"}})
    return body


def _plan_json(tree: Tree, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = run("plan", str(tree.root), "-o", "json")
    return code, json.loads(capsys.readouterr().out)


def _claim(tree: Tree, name: str) -> Path:
    return tree.storage / "e2e" / "claims" / f"{name}.qcow2"


def test_prune_with_delete_policy_keeps_a_claim_another_vm_owns_and_uses(
        conn: Any, tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 8: pruning a Delete-policy VM that also mounts another VM's claim
    (persistentVolumeClaim.claimName) deleted that VM's disk. Rule 13: only files the
    pruned VM owns and nothing else references go; the plan lists each one."""
    tree.put(vm("keeper", run="Halted"))  # rule 6: one running domain per disk
    tree.put(_mount(vm("wiper", annotations=DELETE),
                    {"name": "peer", "persistentVolumeClaim": {"claimName": "keeper-data"}}))
    assert run("apply", str(tree.root)) == 0
    keeper_disk, wiper_disk = _claim(tree, "keeper-data"), _claim(tree, "wiper-data")
    scratch = tree.storage / "e2e" / "vms" / "wiper" / "empty-scratch.qcow2"
    assert keeper_disk.is_file() and wiper_disk.is_file() and scratch.is_file()
    keeper_bytes = keeper_disk.read_bytes()

    tree.remove("wiper")
    code, doc = _plan_json(tree, capsys)
    assert code == 1
    (change,) = doc["changes"]
    assert change["key"] == "VirtualMachine/e2e/wiper" and change["disruption"] == "data-loss"
    assert [(d["path"], d["action"]) for d in change["disks"]] == [
        (str(wiper_disk), "delete"), (str(scratch), "delete"), (str(keeper_disk), "keep")]
    kept = change["disks"][2]
    assert kept["volume"] == "peer"
    assert kept["reason"].startswith("claim keeper-data is in use by VirtualMachine/e2e/keeper")
    assert "1 kept" in change["cause"]
    # The text and markdown plans say the same.
    capsys.readouterr()
    run("plan", str(tree.root))
    text = capsys.readouterr().out
    assert f"- delete file {wiper_disk} (volume data)" in text
    assert f"= keep file {keeper_disk} (volume peer)" in text
    assert "in use by VirtualMachine/e2e/keeper" in text
    run("plan", str(tree.root), "-o", "markdown")
    assert f"keep file {keeper_disk}" in capsys.readouterr().out

    assert run("apply", str(tree.root), "--prune", "--allow-data-loss") == 0
    assert "e2e_wiper" not in domains(conn)
    assert keeper_disk.read_bytes() == keeper_bytes, "another VM's disk must survive"
    assert not wiper_disk.exists() and not scratch.exists() and not scratch.parent.exists()
    assert run("plan", str(tree.root), "--detailed-exitcode") == 0


def test_prune_keeps_a_claim_a_live_vm_of_another_source_mounts_as_datavolume(
        conn: Any, tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Second case: the pruned VM owns the claim (its dataVolumeTemplate); the user is a
    live VM that another source folder applied (not in this tree, not in its inventory),
    mounting it with a dataVolume volume. And a Delete-policy VM whose claim nobody uses
    loses it: the rule keeps only what is referenced."""
    tree.put(vm("owner", annotations=DELETE))
    tree.put(vm("lonely", annotations=DELETE))
    for i in range(8):
        tree.put(vm(f"pad{i}", run="Halted"))
    assert run("apply", str(tree.root)) == 0
    other = Tree(tmp_path / "other", tree.storage)
    reader = vm("reader", run="Halted")
    reader["spec"].pop("dataVolumeTemplates")
    reader["spec"]["template"]["spec"]["volumes"][1] = {
        "name": "data", "dataVolume": {"name": "owner-data"}}
    other.put(reader)
    assert run("apply", str(other.root)) == 0
    owner_disk, lonely_disk = _claim(tree, "owner-data"), _claim(tree, "lonely-data")

    tree.remove("owner")
    tree.remove("lonely")
    code, doc = _plan_json(tree, capsys)
    assert code == 1
    fates = {c["name"]: {d["path"]: (d["action"], d["reason"]) for d in c["disks"]}
             for c in doc["changes"]}
    assert fates["owner"][str(owner_disk)] == (
        "keep", "claim owner-data is in use by VirtualMachine/e2e/reader")
    assert fates["lonely"][str(lonely_disk)][0] == "delete"
    assert run("apply", str(tree.root), "--prune", "--allow-data-loss") == 0
    assert owner_disk.is_file() and not lonely_disk.exists()
    assert "e2e_reader" in domains(conn)
    assert run("plan", str(other.root), "--detailed-exitcode") == 0


# ------------------------------------------------------------------ a missing disk file


def _status_rows(tree: Tree, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert run("status", str(tree.root), "-o", "json") == 0
    return {row["name"]: row for row in json.loads(capsys.readouterr().out)}


def test_missing_claim_file_is_reported_and_recreated_blank_only_with_permission(
        conn: Any, tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 8: the surviving VM pointed at a missing file and the plan said "No
    changes". A missing claim is ErrorPvcNotFound in status, a data-loss change in the
    plan (it can only come back blank), refused without --allow-data-loss."""
    tree.put(vm("victim"))
    assert run("apply", str(tree.root)) == 0
    disk = _claim(tree, "victim-data")
    disk.unlink()  # what the old prune did to another VM's claim

    row = _status_rows(tree, capsys)["victim"]
    # Still running on the deleted file's open inode: Running, but not Ready.
    assert row["printableStatus"] == "Running" and row["ready"] is False
    assert row["drift"] is True
    ready = next(c for c in row["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "DiskFileMissing" and str(disk) in ready["message"]

    code, doc = _plan_json(tree, capsys)
    assert code == 1
    (change,) = doc["changes"]
    assert change["disruption"] == "data-loss" and "restart" in change["actions"]
    (field,) = change["fields"]
    assert (field["path"], field["before"], field["after"]) == (
        "spec.template.spec.volumes[name=data](file)", f"missing: {disk}",
        "created again, blank")
    capsys.readouterr()
    run("plan", str(tree.root))
    assert "No changes" not in capsys.readouterr().out

    assert run("apply", str(tree.root)) == 1  # refused: nothing is recreated silently
    assert not disk.exists()
    conn.lookupByName("e2e_victim").destroy()  # powered off: it cannot start any more
    rows = _status_rows(tree, capsys)
    assert rows["victim"]["printableStatus"] == "ErrorPvcNotFound"
    code, doc = _plan_json(tree, capsys)
    assert code == 1 and doc["changes"][0]["disruption"] == "data-loss"
    assert run("apply", str(tree.root), "--allow-data-loss") == 0
    assert disk.is_file()
    assert _status_rows(tree, capsys)["victim"]["ready"] is True
    assert run("plan", str(tree.root), "--detailed-exitcode") == 0


def test_missing_claim_without_a_declared_size_is_never_made_up(
        conn: Any, tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    """Second case: the claim is mounted by persistentVolumeClaim and nothing in git
    declares it (its owner left git with Retain), so it cannot come back: the plan says
    to restore it, and apply creates nothing. A missing generated file (the cloud-init
    seed) is a live change that apply writes again without any flag."""
    tree.put(vm("gone", run="Halted"))
    assert run("apply", str(tree.root)) == 0
    tree.remove("gone")
    assert run("apply", str(tree.root), "--prune") == 0  # Retain: its claim stays
    user = vm("user", run="Halted", user_data="#cloud-config\n")
    _mount(user, {"name": "old", "persistentVolumeClaim": {"claimName": "gone-data"}})
    tree.put(user)
    assert run("apply", str(tree.root)) == 0
    orphan = _claim(tree, "gone-data")
    seed = tree.storage / "e2e" / "vms" / "user" / "cidata-ci.iso"
    orphan.unlink()
    seed.unlink()

    code, doc = _plan_json(tree, capsys)
    assert code == 1
    (change,) = doc["changes"]
    got = {f["path"]: (f["after"], f["disruption"]) for f in change["fields"]}
    assert got == {
        "spec.template.spec.volumes[name=old](file)": (
            "cannot be created again (no blank size declared): restore the file", "data-loss"),
        "spec.template.spec.volumes[name=ci](file)": ("written again", "live"),
    }
    assert _status_rows(tree, capsys)["user"]["printableStatus"] == "ErrorPvcNotFound"
    assert run("apply", str(tree.root), "--allow-data-loss") == 1  # fails: nothing invented
    assert not orphan.exists()


# ------------------------------------------------------------------ after a kill -9


def _apply_killed(tree: Tree, fault: str) -> None:
    """A real `virtsync apply` process, SIGKILLed by the journal's fault hook."""
    env = dict(os.environ, VIRTSYNC_FAULT_KILL=fault, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-m", "reconciler", "apply", str(tree.root)],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr


@pytest.mark.parametrize("fault", ["intent:1", "action:2"])
def test_leftovers_of_a_killed_apply_are_cleaned_once_converged(
        conn: Any, tree: Tree, fault: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 8: temp disk files a `kill -9` left were never removed, and the "earlier
    apply stopped" note repeated on every apply. Both go once an apply converged; a temp
    file young enough to belong to a running writer, and other files, stay."""
    tree.put(vm("crashy"))
    tree.put(vm("other", run="Halted"))
    _apply_killed(tree, fault)
    assert run("apply", str(tree.root)) == 0  # test driver: this process converges
    claims = tree.storage / "e2e" / "claims"
    vm_dir = tree.storage / "e2e" / "vms" / "crashy"
    old = [claims / ".crashy-data.qcow2.k9x2_abc", vm_dir / ".cidata-0a1b2c3d",
           vm_dir / ".empty-scratch.qcow2.zz00yy11"]
    young = claims / ".other-data.qcow2.young123"
    unrelated = [claims / "notes.txt", claims / ".crashy-data.qcow2.toolong123"]
    for p in [*old, young, *unrelated]:
        p.write_bytes(b"half-made")
    for p in [*old, *unrelated]:
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    # A second kill leaves a journal with an unfinished step.
    tree.put(vm("crashy", cores=2))
    _apply_killed(tree, "intent:1")
    capsys.readouterr()

    assert run("apply", str(tree.root), "--allow-restart") == 0
    err = capsys.readouterr().err
    assert "an earlier apply stopped during" in err
    assert "converged past" in err
    assert [p for p in old if p.exists()] == []
    assert young.exists() and all(p.exists() for p in unrelated)
    for p in old:
        assert f"removed {p}" in err

    assert run("apply", str(tree.root)) == 0
    err = capsys.readouterr().err
    assert "earlier apply stopped" not in err and "removed" not in err
    assert "No changes" in err


def test_a_failed_apply_leaves_the_notes_and_temp_files(
        conn: Any, tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    """Second case: not converged (an action failed), nothing is cleaned yet."""
    tree.put(vm("crashy"))
    _apply_killed(tree, "intent:1")
    claims = tree.storage / "e2e" / "claims"
    claims.mkdir(parents=True, exist_ok=True)
    leftover = claims / ".crashy-data.qcow2.abcdefgh"
    leftover.write_bytes(b"x")
    os.utime(leftover, (time.time() - 3600, time.time() - 3600))
    broken = vm("crashy")
    broken["spec"]["template"]["spec"]["volumes"][1] = {
        "name": "data", "persistentVolumeClaim": {"claimName": "nowhere"}}
    broken["spec"].pop("dataVolumeTemplates")
    tree.put(broken)
    capsys.readouterr()
    assert run("apply", str(tree.root)) == 1  # the claim does not exist: create fails
    assert leftover.exists()
    tree.put(vm("crashy"))
    assert run("apply", str(tree.root)) == 0
    err = capsys.readouterr().err
    assert err.count("an earlier apply stopped during") == 2  # still noted: not converged
    assert not leftover.exists()


def test_an_incremental_cycle_asks_every_vm_before_deleting_a_claim(
        conn: Any, tree: Tree, tmp_path: Path) -> None:
    """watch (git mode) prunes in incremental cycles that observe only the changed keys:
    the VM still using the claim is not among them, and must still keep it."""
    from reconciler.backends.libvirt import LibvirtBackend
    from reconciler.core.model import ObjectKey
    from reconciler.execute.cycle import plan_cycle
    from reconciler.execute.inventory import Inventory, source_id
    from reconciler.planning.reconcile import load_desired

    tree.put(vm("owner", annotations=DELETE))
    reader = vm("reader", run="Halted")
    _mount(reader, {"name": "peer", "dataVolume": {"name": "owner-data"}})
    tree.put(reader)
    assert run("apply", str(tree.root)) == 0
    tree.remove("owner")
    desired = load_desired([str(tree.root)])
    backend = LibvirtBackend.from_manifests(desired.manifests, state=tmp_path / "state")
    inventory = Inventory.load(tmp_path / "state", source_id(desired.root))
    owner = ObjectKey("VirtualMachine", "e2e", "owner")
    plan, _ = plan_cycle(desired, backend, inventory, prune=True, keys={owner})
    (change,) = plan.changes
    claim = str(_claim(tree, "owner-data"))
    assert claim not in change.deleted_files
    assert [d.reason for d in change.disks if d.path == claim] == [
        "claim owner-data is in use by VirtualMachine/e2e/reader"]


def test_a_saved_plan_cannot_add_a_file_to_delete(
        conn: Any, tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A plan file lists the files a prune deletes; one edited to name another VM's claim
    is refused, and the claim survives (rule 13)."""
    tree.put(vm("keeper", run="Halted"))
    tree.put(vm("wiper", annotations=DELETE))
    for i in range(8):
        tree.put(vm(f"pad{i}", run="Halted"))
    assert run("apply", str(tree.root)) == 0
    tree.remove("wiper")
    plan_file = tmp_path / "plan.json"
    assert run("plan", str(tree.root), "--prune", "--out-file", str(plan_file)) == 1
    doc = json.loads(plan_file.read_text())
    (change,) = doc["changes"]
    keeper_disk = _claim(tree, "keeper-data")
    change["disks"].append({"path": str(keeper_disk), "volume": "data", "action": "delete",
                            "reason": "edited"})
    plan_file.write_text(json.dumps(doc))
    capsys.readouterr()
    assert run("apply", str(tree.root), "--plan", str(plan_file), "--prune",
               "--allow-data-loss") == 2
    err = capsys.readouterr().err
    assert "refused" in err and "disks" in err, err
    assert keeper_disk.is_file() and "e2e_wiper" in domains(conn)


# ------------------------------------------------------------------ claim owners first


def _mounting(name: str, claim: str, **kw: Any) -> dict[str, Any]:
    body = vm(name, **kw)
    spec = body["spec"]["template"]["spec"]
    spec["volumes"].append({"name": "peer", "persistentVolumeClaim": {"claimName": claim}})
    spec["domain"]["devices"]["disks"].append({"name": "peer", "disk": {"bus": "virtio"}})
    return body


@pytest.mark.parametrize("chain", [("b", "a"), ("zz", "mm", "aa")])
def test_a_vm_mounting_a_claim_another_new_vm_declares_is_created_after_it(
        conn: Any, tree: Tree, chain: tuple[str, ...], capsys: pytest.CaptureFixture[str],
        ) -> None:
    """Found by the model-based test: the mounting VM sorted first by name and failed
    with ErrorPvcNotFound until a rerun. The owner's template creates the claim, so
    apply creates owners first, whatever the names (a chain of three as second case)."""
    tree.put(vm(chain[0], run="Halted"))
    for owner, mounter in itertools.pairwise(chain):
        tree.put(_mounting(mounter, f"{owner}-data", run="Halted"))  # rule 6: one runs
    code = run("apply", str(tree.root))
    out = capsys.readouterr().out
    assert code == 0 and "failed" not in out, out
    assert all(f"e2e_{n}" in domains(conn) for n in chain)
    assert run("plan", str(tree.root)) == 0
