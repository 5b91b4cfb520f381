"""Trust boundaries on one node, through the CLI on libvirt's test driver (issue 8, 14):
owner markers that name someone else (rule 3), one corrupt identity record, and hostDisk
confined to the node's hostDiskDir (rule 14)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import libvirt
import pytest
import yaml

from node.cluster.config import cluster_from_manifests
from node.identity.metadata import NS, PREFIX, owner_element_xml, parse_owner_metadata
from reconciler.backends.base import BackendError
from reconciler.backends.libvirt import LibvirtBackend
from reconciler.core.model import ObjectKey
from reconciler.planning.reconcile import load_desired

from . import test_apply_testdriver as base
from .test_apply_testdriver import Tree, domains, run, vm

# The same fixtures as the apply tests (a test-driver connection, a repo with a Cluster).
conn = base.conn
tree = base.tree

INACTIVE = libvirt.VIR_DOMAIN_XML_INACTIVE
BOTH = libvirt.VIR_DOMAIN_AFFECT_CONFIG | libvirt.VIR_DOMAIN_AFFECT_LIVE


def _xml(dom: Any) -> tuple[str, str]:
    return dom.XMLDesc(0), dom.XMLDesc(INACTIVE)


def _remark(dom: Any, **changes: str) -> None:
    """Rewrite the domain's virtsync marker (live and persistent), as a foreign tool or a
    copied definition would leave it."""
    meta = parse_owner_metadata(dom.XMLDesc(INACTIVE))
    assert meta is not None
    flags = BOTH if dom.isActive() else libvirt.VIR_DOMAIN_AFFECT_CONFIG
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                    owner_element_xml(replace(meta, **changes)), PREFIX, NS, flags)


# Two shapes of "not this VM's marker": another owner, and virtsync's marker for another VM.
FOREIGN = {"other-owner": {"owner": "someone-else"}, "other-vm": {"name": "db"}}


@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_foreign_marker_is_a_conflict_and_left_byte_identical(
        conn: Any, tree: Tree, capsys: pytest.CaptureFixture[str], case: str) -> None:
    tree.put(vm("web"))
    tree.put(vm("db"))
    assert run("apply", str(tree.root)) == 0
    web = conn.lookupByName("e2e_web")
    _remark(web, **FOREIGN[case])
    before = _xml(web)
    capsys.readouterr()

    # Rule 3: plan and status report web as a conflict and plan nothing.
    assert run("plan", str(tree.root)) == 2
    err = capsys.readouterr().err
    assert "e2e/web" in err and "owner marker" in err
    assert run("status", str(tree.root)) == 2
    assert "e2e/web" in capsys.readouterr().err
    assert run("apply", str(tree.root), "--allow-restart", "--allow-data-loss") == 2
    assert _xml(web) == before

    # Out of git with --prune: no longer virtsync's, so it is not pruned either.
    tree.remove("web")
    assert run("apply", str(tree.root), "--prune", "--allow-data-loss") == 0
    assert "e2e/web" not in capsys.readouterr().out
    assert _xml(conn.lookupByName("e2e_web")) == before
    assert domains(conn) == {"e2e_web": True, "e2e_db": True}


@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_lookup_refuses_foreign_marker(conn: Any, tree: Tree, tmp_path: Path,
                                       case: str) -> None:
    """The watch cycle observes by name (observe_keys) and power verbs act by name: both
    go through host.lookup, which must not take a domain marked for someone else."""
    tree.put(vm("web"))
    tree.put(vm("db"))
    assert run("apply", str(tree.root)) == 0
    web = conn.lookupByName("e2e_web")
    _remark(web, **FOREIGN[case])
    before = _xml(web)
    be = LibvirtBackend(cluster_from_manifests(load_desired([str(tree.root)]).manifests),
                        state=tmp_path / "state")
    key = ObjectKey("VirtualMachine", "e2e", "web")
    try:
        obs = be.observe_keys([key])
        assert obs.conflicts == (key,) and obs.objects == ()
        assert key in be.observe().conflicts
        with pytest.raises(BackendError, match="owner marker"):
            be.stop(key, grace_period=0, force=True)
    finally:
        be.close()
    assert _xml(web) == before and web.isActive()


def _record(tree: Tree, name: str) -> Path:
    return tree.storage / ".virtsync-identity" / "e2e" / f"{name}.json"


# Two shapes of damage: not JSON at all, and JSON of the wrong shape.
CORRUPT = {"truncated": b'{"version": 1, "uuid": "', "wrong-shape": b'{"version": 1}\n'}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_identity_record_fails_only_its_own_vm(
        conn: Any, tree: Tree, capsys: pytest.CaptureFixture[str], case: str) -> None:
    tree.put(vm("web"))
    assert run("apply", str(tree.root)) == 0
    record = _record(tree, "web")
    assert record.is_file()
    uuid = conn.lookupByName("e2e_web").UUIDString()
    record.write_bytes(CORRUPT[case])
    # web changes (a label: no restart) and two new VMs arrive.
    body = vm("web")
    body["metadata"]["labels"] = {"tier": "front"}
    tree.put(body)
    tree.put(vm("db"))
    tree.put(vm("cache", run="Halted"))
    capsys.readouterr()
    # Exit 1 for a partly failed apply (docs/apply.md), the others applied.
    assert run("apply", str(tree.root)) == 1
    out = capsys.readouterr().out
    assert "VirtualMachine/e2e/db created" in out and "VirtualMachine/e2e/cache created" in out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("VirtualMachine/e2e/web ")]
    assert " failed " in line and str(record) in line and "identity record" in line
    assert domains(conn) == {"e2e_web": True, "e2e_db": True, "e2e_cache": False}
    # Never a new identity over the broken record; the record is left for the operator.
    assert conn.lookupByName("e2e_web").UUIDString() == uuid
    assert record.read_bytes() == CORRUPT[case]


# ----------------------------------------------------------------- hostDisk (rule 14)


def _cluster(tree: Tree, **node: Any) -> None:
    spec = {"name": "n1", "uri": base.URI, "storageDir": str(tree.storage),
            "imageDir": str(tree.storage.parent / "images"), "memoryMiB": 16384, **node}
    (tree.root / "cluster.yaml").write_text(yaml.safe_dump({
        "apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "e2e"},
        "spec": {"nodes": [spec]}}))


def host_vm(name: str, path: str, run: str = "Always") -> dict[str, Any]:
    body = vm(name, run=run)
    tmpl = body["spec"]["template"]["spec"]
    tmpl["domain"]["devices"]["disks"].append({"name": "host", "disk": {"bus": "virtio"}})
    tmpl["volumes"].append({"name": "host", "hostDisk": {
        "path": path, "type": "DiskOrCreate", "capacity": "1Mi"}})
    return body


HOST_PATH_FIELD = "spec.template.spec.volumes[2].hostDisk.path"


def _finding(out: str, file: str, field: str) -> str:
    (line,) = [ln for ln in out.splitlines() if f"/{file}:" in ln and field in ln]
    assert line.split(f"/{file}:")[1].split(":")[0].isdigit()  # file:line:col
    return line


def test_host_disk_inside_host_disk_dir_is_applied(conn: Any, tree: Tree,
                                                   tmp_path: Path) -> None:
    hd = tmp_path / "hostdisks"
    _cluster(tree, hostDiskDir=str(hd))
    tree.put(host_vm("web", "web/disk.img"))
    tree.put(host_vm("db", f"{hd}/db/disk.img"))
    assert run("validate", str(tree.root)) == 0
    assert run("apply", str(tree.root)) == 0
    for name in ("web", "db"):
        assert (hd / name / "disk.img").stat().st_size == 1024 * 1024
        assert str(hd / name / "disk.img") in conn.lookupByName(f"e2e_{name}").XMLDesc()


# Each escape: a path as written in git, and what the file would have hit.
ESCAPES = {
    "dotdot-into-identity-store": "../storage/.virtsync-identity/e2e/evil.json",
    "absolute-other-namespace-claim": "{storage}/other/claims/data.qcow2",
    "absolute-state-dir": "{state}/inventory-evil",
    "absolute-etc": "/etc/evil.img",
}


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_validate_refuses_host_disk_outside_its_root(
        conn: Any, tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        case: str) -> None:
    _cluster(tree, hostDiskDir=str(tmp_path / "hostdisks"))
    path = ESCAPES[case].format(storage=tree.storage, state=tmp_path / "state")
    tree.put(host_vm("web", path))
    tree.put(vm("db"))
    capsys.readouterr()
    assert run("validate", str(tree.root)) == 1
    line = _finding(capsys.readouterr().out, "vms/web.yaml", HOST_PATH_FIELD)
    assert "outside the nodes' hostDiskDir" in line and "rule 14" in line
    # apply refuses the tree as validate did: nothing is created anywhere.
    assert run("apply", str(tree.root)) == 2
    assert domains(conn) == {}
    assert not tree.storage.exists() or not any(tree.storage.rglob("*"))


def test_validate_refuses_host_disk_without_host_disk_dir(
        conn: Any, tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    tree.put(host_vm("web", "web/disk.img"))
    capsys.readouterr()
    assert run("validate", str(tree.root)) == 1
    line = _finding(capsys.readouterr().out, "vms/web.yaml", HOST_PATH_FIELD)
    assert "sets none" in line and "cluster.yaml" in line
    assert run("apply", str(tree.root)) == 2
    assert domains(conn) == {}


@pytest.mark.parametrize("tree_dir", ["storageDir", "imageDir"])
@pytest.mark.parametrize("shape", ["same", "inside", "contains"])
def test_validate_refuses_host_disk_dir_overlapping_own_trees(
        conn: Any, tree: Tree, capsys: pytest.CaptureFixture[str], tree_dir: str,
        shape: str) -> None:
    own = tree.storage if tree_dir == "storageDir" else tree.storage.parent / "images"
    hd = {"same": own, "inside": own / "hd", "contains": own.parent}[shape]
    _cluster(tree, hostDiskDir=str(hd) + "/")
    tree.put(vm("web"))
    capsys.readouterr()
    assert run("validate", str(tree.root)) == 1
    line = _finding(capsys.readouterr().out, "cluster.yaml", "spec.nodes[0].hostDiskDir")
    # A parent of both trees is reported for the first of them.
    assert f"overlaps virtsync's {'storageDir' if shape == 'contains' else tree_dir}" in line
    assert run("apply", str(tree.root)) == 2
    assert domains(conn) == {}


def test_apply_refuses_host_disk_dir_overlapping_state_dir(
        conn: Any, tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The state directory belongs to the applying host, so only apply can check it."""
    _cluster(tree, hostDiskDir=str(tmp_path / "state" / "hd"))
    tree.put(vm("web"))
    capsys.readouterr()
    assert run("apply", str(tree.root)) == 2
    err = capsys.readouterr().err
    assert "cluster.yaml: spec.nodes[0].hostDiskDir" in err and "state directory" in err
    assert domains(conn) == {}


def test_symlink_in_host_disk_dir_into_identity_store_is_refused_on_the_node(
        conn: Any, tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """validate cannot see the node's symlinks; the node resolves them and refuses. The
    identity store stays clean, so the node's other VMs are created as usual."""
    hd = tmp_path / "hostdisks"
    hd.mkdir()
    store = tree.storage / ".virtsync-identity" / "e2e"
    store.mkdir(parents=True)
    (hd / "shared").symlink_to(store)
    _cluster(tree, hostDiskDir=str(hd))
    tree.put(host_vm("web", "shared/evil.json"))
    tree.put(vm("db"))
    tree.put(vm("cache"))
    assert run("validate", str(tree.root)) == 0
    capsys.readouterr()
    assert run("apply", str(tree.root)) == 1
    out = capsys.readouterr().out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("VirtualMachine/e2e/web ")]
    assert " failed " in line and "outside" in line and str(hd) in line
    assert "VirtualMachine/e2e/db created" in out and "VirtualMachine/e2e/cache created" in out
    assert not (store / "evil.json").exists()
    assert sorted(p.name for p in store.iterdir()) == ["cache.json", "db.json", "web.json"]


def test_host_disk_refused_on_a_node_without_host_disk_dir(
        conn: Any, tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """No Cluster in the tree: validate knows no node; the default node has no hostDiskDir,
    so the VM is not placed (and the node itself would refuse it: test_disks_prepare)."""
    (tree.root / "cluster.yaml").unlink()
    monkeypatch.setenv("VIRTSYNC_LIBVIRT_URI", base.URI)
    storage = tmp_path / "state" / "storage"
    tree.put(host_vm("web", str(storage / "e2e" / "claims" / "db-data.qcow2"), run="Halted"))
    assert run("validate", str(tree.root)) == 0
    capsys.readouterr()
    assert run("apply", str(tree.root)) == 1
    out = capsys.readouterr().out
    assert "VirtualMachine/e2e/web failed" in out and "ErrorUnschedulable" in out
    assert "1 node(s) had no hostDiskDir holding the hostDisk path(s)" in out
    assert not (storage / "e2e" / "claims" / "db-data.qcow2").exists()
