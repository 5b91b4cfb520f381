"""Every data-loss row of the classification table, end to end (issue 14).

For each row: on the libvirt backend (`test:///default`) `virtsync apply` refuses the
change without `--allow-data-loss` and changes nothing (domains, disks); in pull-request
mode (`plan --base`, the JSON plan) the object is `data-loss` and the field that decides
it is the row's field — for both `--backend libvirt` and `--backend kubevirt`. (There is
no KubeVirt apply target yet; its plan is what a reviewer sees.)
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.test_apply_testdriver import Tree, conn, domains, files, run, tree, vm
from reconciler.backends.libvirt_profile import PROFILE
from reconciler.planning.classify import Disruption

__all__ = ["conn", "tree"]  # fixtures, re-used from the apply tests

Body = dict[str, Any]


def _tpl(body: Body) -> Body:
    spec: Body = body["spec"]["template"]["spec"]
    return spec


def _dvt(body: Body) -> Body:
    dvt: Body = body["spec"]["dataVolumeTemplates"][0]["spec"]
    return dvt


def drop_dvt(body: Body) -> None:
    # One owned DataVolume goes (an item of the list), with the volume and disk using it.
    body["spec"]["dataVolumeTemplates"] = [t for t in body["spec"]["dataVolumeTemplates"]
                                           if t["metadata"]["name"] != "web-extra"]
    _tpl(body)["volumes"] = [v for v in _tpl(body)["volumes"] if v["name"] != "extra"]
    _tpl(body)["domain"]["devices"]["disks"] = [
        d for d in _tpl(body)["domain"]["devices"]["disks"] if d["name"] != "extra"]


def drop_all_dvts(body: Body) -> None:
    # The whole list goes (one field change); the volume keeps naming the DataVolume.
    del body["spec"]["dataVolumeTemplates"]


def drop_all_volumes(body: Body) -> None:
    del _tpl(body)["volumes"]
    del _tpl(body)["domain"]["devices"]["disks"]


def drop_data_volume(body: Body) -> None:
    tpl = _tpl(body)
    tpl["volumes"] = [v for v in tpl["volumes"] if v["name"] != "data"]
    tpl["domain"]["devices"]["disks"] = [d for d in tpl["domain"]["devices"]["disks"]
                                         if d["name"] != "data"]


def drop_scratch_volume(body: Body) -> None:
    tpl = _tpl(body)
    tpl["volumes"] = [v for v in tpl["volumes"] if v["name"] != "scratch"]
    tpl["domain"]["devices"]["disks"] = [d for d in tpl["domain"]["devices"]["disks"]
                                         if d["name"] != "scratch"]


def grow_empty_disk(body: Body) -> None:
    next(v for v in _tpl(body)["volumes"] if v["name"] == "scratch")["emptyDisk"] = \
        {"capacity": "2Mi"}


def new_source(body: Body) -> None:
    _dvt(body)["source"] = {"http": {"url": "http://images.invalid/other.qcow2"}}


def source_ref(body: Body) -> None:
    del _dvt(body)["source"]
    _dvt(body)["sourceRef"] = {"kind": "DataSource", "name": "fedora"}


def shrink(body: Body) -> None:
    _dvt(body)["storage"]["resources"]["requests"]["storage"] = "8Mi"


def storage_class(body: Body) -> None:
    _dvt(body)["storage"]["storageClassName"] = "other"


@dataclass(frozen=True)
class Row:
    reason: str  # the row of RULES that decides
    path: str  # the deciding field in the JSON plan
    change: Callable[[Body], None]
    kind: str = "VirtualMachine"


DVT = "spec.dataVolumeTemplates[metadata.name=web-data]"
VOL = "spec.template.spec.volumes"
ROWS = [
    Row("owned DataVolume deleted with its data",
        "spec.dataVolumeTemplates[metadata.name=web-extra]", drop_dvt),
    Row("owned DataVolume deleted with its data", "spec.dataVolumeTemplates", drop_all_dvts),
    Row("volume holding data removed", VOL, drop_all_volumes),
    Row("new DataVolume source: the disk is re-imported", f"{DVT}.spec.source.http", new_source),
    Row("new DataVolume source: the disk is re-imported", f"{DVT}.spec.sourceRef", source_ref),
    Row("disk shrunk", f"{DVT}.spec.storage.resources.requests.storage", shrink),
    Row("DataVolume spec is immutable: deleted and created again",
        f"{DVT}.spec.storage.storageClassName", storage_class),
    Row("volume holding data removed", f"{VOL}[name=data]", drop_data_volume),
    Row("volume holding data removed", f"{VOL}[name=scratch]", drop_scratch_volume),
    Row("emptyDisk recreated: its contents are lost",
        f"{VOL}[name=scratch].emptyDisk.capacity", grow_empty_disk),
]


# A standalone DataVolume (kind DataVolume), used by the VM through its volume.
def datavolume(**spec: Any) -> Body:
    base: Body = {"storage": {"resources": {"requests": {"storage": "16Mi"}}},
                  "source": {"blank": {}}}
    base.update(spec)
    return {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
            "metadata": {"name": "shared", "namespace": "e2e"}, "spec": base}


DV_ROWS = [
    Row("new DataVolume source: the disk is re-imported", "spec.source.http",
        lambda b: b["spec"].update(source={"http": {"url": "http://images.invalid/x"}}),
        "DataVolume"),
    Row("new DataVolume source: the disk is re-imported", "spec.sourceRef",
        lambda b: (b["spec"].pop("source"),
                   b["spec"].update(sourceRef={"kind": "DataSource", "name": "x"})),
        "DataVolume"),
    Row("disk shrunk", "spec.storage.resources.requests.storage",
        lambda b: b["spec"]["storage"]["resources"]["requests"].update(storage="8Mi"),
        "DataVolume"),
    Row("DataVolume spec is immutable: deleted and created again", "spec.contentType",
        lambda b: b["spec"].update(contentType="archive"), "DataVolume"),
]


# Data-loss rows that no git edit reaches (the live side changed): gated by the named
# CLI test instead, which must exist.
GATED_ELSEWHERE = {
    "disk file missing on the node: its data is gone; restore the file first to keep it":
        ("test_storage_ownership.py",
         "test_missing_claim_file_is_reported_and_recreated_blank_only_with_permission"),
}


def test_every_data_loss_row_has_a_gate_case() -> None:
    rows = {r.reason for r in PROFILE.classification.rules
            if r.disruption == Disruption.DATA_LOSS}
    assert rows == {r.reason for r in ROWS} | {r.reason for r in DV_ROWS} | set(GATED_ELSEWHERE)
    for file, test in GATED_ELSEWHERE.values():
        assert f"def {test}(" in (Path(__file__).parent / file).read_text()


def _user_vm() -> Body:
    body = vm("web")
    extra = copy.deepcopy(body["spec"]["dataVolumeTemplates"][0])
    extra["metadata"]["name"] = "web-extra"
    body["spec"]["dataVolumeTemplates"].append(extra)
    _tpl(body)["volumes"].append({"name": "extra", "dataVolume": {"name": "web-extra"}})
    _tpl(body)["domain"]["devices"]["disks"].append({"name": "extra", "disk": {}})
    _tpl(body)["volumes"].append({"name": "shared", "dataVolume": {"name": "shared"}})
    _tpl(body)["domain"]["devices"]["disks"].append({"name": "shared", "disk": {}})
    return body


def _put_dv(tree: Tree, body: Body) -> None:
    (tree.root / "vms" / "shared-dv.yaml").write_text(yaml.safe_dump(body))


def _snapshot(conn: Any, tree: Tree) -> tuple[dict[str, str], dict[str, bytes]]:
    return ({d.name(): d.XMLDesc() for d in conn.listAllDomains()}, files(tree.storage))


def _put_changed(tree: Tree, row: Row) -> None:
    """Write the row's change into the tree: to the VM or to the standalone DataVolume."""
    body, dv = _user_vm(), datavolume()
    row.change(body if row.kind == "VirtualMachine" else dv)
    tree.put(body)
    _put_dv(tree, dv)


@pytest.mark.parametrize("row", ROWS + DV_ROWS, ids=lambda r: f"{r.kind}:{r.path}")
def test_apply_refuses_data_loss_without_the_flag(conn: Any, tree: Tree, row: Row,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    tree.put(_user_vm())
    _put_dv(tree, datavolume())
    assert run("apply", str(tree.root)) == 0
    before = _snapshot(conn, tree)
    _put_changed(tree, row)
    capsys.readouterr()
    # Even with every other permission, data loss needs its own flag.
    assert run("apply", str(tree.root), "--allow-restart", "--auto-approve") == 1
    err = capsys.readouterr().err
    assert "needs --allow-data-loss" in err and "nothing was changed" in err, err
    assert row.reason in err
    assert _snapshot(conn, tree) == before
    assert domains(conn) == {"e2e_web": True}


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), "-c", "user.email=t@virtsync.invalid",
                           "-c", "user.name=test", *args],
                          check=True, capture_output=True, text=True).stdout


@pytest.mark.parametrize("backend", ["libvirt", "kubevirt"])
@pytest.mark.parametrize("row", ROWS + DV_ROWS, ids=lambda r: f"{r.kind}:{r.path}")
def test_plan_base_shows_data_loss(tree: Tree, row: Row, backend: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    tree.put(_user_vm())
    _put_dv(tree, datavolume())
    _git(tree.root, "init", "-q", "-b", "main")
    _git(tree.root, "add", "-A")
    _git(tree.root, "commit", "-q", "-m", "base")
    _put_changed(tree, row)
    _git(tree.root, "commit", "-qam", "change")
    capsys.readouterr()
    assert run("plan", str(tree.root), "--base", "HEAD~1", "-o", "json",
               "--backend", backend) == 1
    doc = json.loads(capsys.readouterr().out)
    (change,) = [c for c in doc["changes"] if c["kind"] == row.kind]
    assert change["disruption"] == "data-loss", change
    fields = {f["path"]: f for f in change["fields"]}
    assert any(p == row.path or p.startswith(row.path + ".") for p in fields), fields
    decided = [f for p, f in fields.items() if p == row.path or p.startswith(row.path + ".")]
    assert all(f["disruption"] == "data-loss" for f in decided), decided


# Deleting objects (not a row of RULES: plan.delete_class). What is data loss depends on
# the object, its disk policy and the backend.
DELETES = [
    # (what is removed from git, disk policy of the VM, backend, expected class)
    ("DataVolume", None, "libvirt", "data-loss"),
    ("DataVolume", None, "kubevirt", "data-loss"),
    ("VirtualMachine", "Delete", "libvirt", "data-loss"),
    ("VirtualMachine", "Delete", "kubevirt", "data-loss"),
    ("VirtualMachine", None, "kubevirt", "data-loss"),  # its owned DataVolumes go
    ("VirtualMachine", None, "libvirt", "replace"),  # undefined, disks kept (rule 4)
]


def _policy_vm(policy: str | None) -> Body:
    body = _user_vm()
    if policy:
        body["metadata"]["annotations"] = {"virtsync.io/disk-policy": policy}
    return body


@pytest.mark.parametrize(("kind", "policy", "backend", "expected"), DELETES)
def test_plan_base_classes_deletions(tree: Tree, kind: str, policy: str | None, backend: str,
                                     expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    tree.put(_policy_vm(policy))
    _put_dv(tree, datavolume())
    _git(tree.root, "init", "-q", "-b", "main")
    _git(tree.root, "add", "-A")
    _git(tree.root, "commit", "-q", "-m", "base")
    if kind == "DataVolume":
        (tree.root / "vms" / "shared-dv.yaml").unlink()
    else:
        tree.remove("web")
    _git(tree.root, "commit", "-qam", "delete")
    capsys.readouterr()
    assert run("plan", str(tree.root), "--base", "HEAD~1", "-o", "json",
               "--backend", backend) == 1
    (change,) = json.loads(capsys.readouterr().out)["changes"]
    assert (change["kind"], change["actions"], change["disruption"]) == \
        (kind, ["delete"], expected)


def test_prune_with_disk_deletion_needs_the_flag(conn: Any, tree: Tree,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    tree.put(_policy_vm("Delete"))
    _put_dv(tree, datavolume())
    assert run("apply", str(tree.root)) == 0
    before = _snapshot(conn, tree)
    tree.remove("web")
    capsys.readouterr()
    assert run("apply", str(tree.root), "--prune", "--allow-restart", "--auto-approve") == 1
    err = capsys.readouterr().err
    assert "needs --allow-data-loss" in err and "disk policy Delete" in err, err
    assert _snapshot(conn, tree) == before
