"""`virtsync apply` end to end through the CLI on libvirt's test driver (fast lane):
apply → plan empty → change → apply → prune, and the safety rules around it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
import yaml

from reconciler.cli import main
from reconciler.execute.lock import StateLock

URI = "test:///default"


def vm(name: str, *, cores: int = 1, run: str = "Always", annotations: dict[str, str] | None = None,
       user_data: str | None = None) -> dict[str, Any]:
    disks: list[Any] = [{"name": "scratch", "disk": {"bus": "virtio"}},
                        {"name": "data", "disk": {"bus": "virtio"}}]
    volumes: list[Any] = [{"name": "scratch", "emptyDisk": {"capacity": "1Mi"}},
                          {"name": "data", "dataVolume": {"name": f"{name}-data"}}]
    if user_data is not None:
        disks.append({"name": "ci", "disk": {"bus": "virtio"}})
        volumes.append({"name": "ci", "cloudInitNoCloud": {"userData": user_data}})
    meta: dict[str, Any] = {"name": name, "namespace": "e2e"}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": meta,
        "spec": {"runStrategy": run, "dataVolumeTemplates": [{
            "metadata": {"name": f"{name}-data"},
            "spec": {"storage": {"resources": {"requests": {"storage": "16Mi"}}},
                     "source": {"blank": {}}}}],
                 "template": {"spec": {
            "terminationGracePeriodSeconds": 5,
            "domain": {"cpu": {"cores": cores}, "memory": {"guest": "64Mi"},
                       "devices": {"disks": disks,
                                   "interfaces": [{"name": "default", "masquerade": {}}]}},
            "networks": [{"name": "default", "pod": {}}],
            "volumes": volumes,
        }}},
    }


class Tree:
    def __init__(self, root: Path, storage: Path) -> None:
        self.root = root
        self.storage = storage
        (root / "vms").mkdir(parents=True)
        (root / "cluster.yaml").write_text(yaml.safe_dump({
            "apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "e2e"},
            "spec": {"nodes": [{"name": "n1", "uri": URI, "storageDir": str(storage),
                                "imageDir": str(storage.parent / "images"),
                                # the test driver's host is small; say what to schedule on
                                "memoryMiB": 16384}]},
        }))

    def put(self, body: dict[str, Any]) -> None:
        (self.root / "vms" / f"{body['metadata']['name']}.yaml").write_text(yaml.safe_dump(body))

    def remove(self, name: str) -> None:
        (self.root / "vms" / f"{name}.yaml").unlink()


@pytest.fixture()
def conn() -> Iterator[Any]:
    c = libvirt.open(URI)  # keeps the test driver's state alive for the whole test
    try:
        yield c
    finally:
        for dom in c.listAllDomains():
            if dom.name().startswith("e2e_"):
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
        c.close()


@pytest.fixture()
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tree:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    return Tree(tmp_path / "repo", tmp_path / "storage")


def run(*argv: str) -> int:
    return main(list(argv))


def domains(conn: Any) -> dict[str, bool]:
    return {d.name(): bool(d.isActive()) for d in conn.listAllDomains()
            if d.name().startswith("e2e_")}


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_apply_then_nothing_to_do(conn: Any, tree: Tree, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    tree.put(vm("web"))
    tree.put(vm("db", run="Halted"))
    assert run("apply", str(tree.root), "--auto-approve") == 0
    out = capsys.readouterr().out
    assert "VirtualMachine/e2e/web created" in out and "VirtualMachine/e2e/db created" in out
    assert domains(conn) == {"e2e_web": True, "e2e_db": False}

    # Rule 12: after a successful apply the next apply has nothing to do, and writes nothing.
    xml_before = {d.name(): d.XMLDesc() for d in conn.listAllDomains()}
    state_before = files(tmp_path / "state")
    storage_before = files(tree.storage)
    assert run("apply", str(tree.root)) == 0
    assert "No changes" in capsys.readouterr().err
    assert {d.name(): d.XMLDesc() for d in conn.listAllDomains()} == xml_before
    assert files(tree.storage) == storage_before
    after = files(tmp_path / "state")
    assert {k: v for k, v in after.items() if "cache" not in k} == \
        {k: v for k, v in state_before.items() if "cache" not in k}


def test_restart_needs_permission(conn: Any, tree: Tree,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    tree.put(vm("web", cores=1))
    assert run("apply", str(tree.root)) == 0
    uuid = conn.lookupByName("e2e_web").UUIDString()
    tree.put(vm("web", cores=2))
    capsys.readouterr()
    assert run("apply", str(tree.root)) == 1
    err = capsys.readouterr().err
    assert "--allow-restart" in err and "nothing was changed" in err
    assert conn.lookupByName("e2e_web").maxVcpus() == 1

    assert run("apply", str(tree.root), "--allow-restart") == 0
    assert "VirtualMachine/e2e/web restarted" in capsys.readouterr().out
    dom = conn.lookupByName("e2e_web")
    assert dom.maxVcpus() == 2 and dom.isActive() and dom.UUIDString() == uuid
    assert run("apply", str(tree.root)) == 0


def test_policy_annotation_allows_restart(conn: Any, tree: Tree) -> None:
    allow = {"virtsync.io/allow-disruption": "restart"}
    tree.put(vm("web", annotations=allow))
    assert run("apply", str(tree.root)) == 0
    tree.put(vm("web", cores=3, annotations=allow))
    assert run("apply", str(tree.root)) == 0
    assert conn.lookupByName("e2e_web").maxVcpus() == 3


def test_prune_is_opt_in_keeps_disks_and_honours_policy(conn: Any, tree: Tree,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    tree.put(vm("keep"))
    tree.put(vm("wipe", annotations={"virtsync.io/disk-policy": "Delete"}))
    for i in range(8):
        tree.put(vm(f"pad{i}", run="Halted"))
    assert run("apply", str(tree.root)) == 0
    disks_before = {p.name for p in tree.storage.rglob("*.qcow2")}
    assert any("keep-data" in n for n in disks_before)
    assert any("wipe-data" in n for n in disks_before)

    tree.remove("keep")
    tree.remove("wipe")
    capsys.readouterr()
    assert run("apply", str(tree.root)) == 0
    assert "no longer in git; prune with --prune" in capsys.readouterr().out
    assert {"e2e_keep", "e2e_wipe"} <= set(domains(conn))

    assert run("apply", str(tree.root), "--prune", "--allow-data-loss") == 0
    assert not {"e2e_keep", "e2e_wipe"} & set(domains(conn))
    disks_after = {p.name for p in tree.storage.rglob("*.qcow2")}
    assert any("keep-data" in n for n in disks_after), "Retain policy: disk must stay"
    assert not any("wipe-data" in n for n in disks_after), "Delete policy: disk must go"
    assert run("apply", str(tree.root), "--prune") == 0


def test_prune_above_cap_is_refused(conn: Any, tree: Tree,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(5):
        tree.put(vm(f"v{i}", run="Halted"))
    assert run("apply", str(tree.root)) == 0
    for i in range(3):
        tree.remove(f"v{i}")
    capsys.readouterr()
    assert run("apply", str(tree.root), "--prune") == 1  # a refusal, like every other one
    assert "pruning 3 objects is over the cap (1)" in capsys.readouterr().err
    assert len(domains(conn)) == 5
    assert run("apply", str(tree.root), "--prune", "--max-prune", "3") == 0
    assert len(domains(conn)) == 2


@pytest.mark.parametrize("breakage", ["empty", "unparsable", "missing"])
def test_broken_source_deletes_nothing(conn: Any, tree: Tree, breakage: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    tree.put(vm("web"))
    assert run("apply", str(tree.root)) == 0
    target = str(tree.root)
    if breakage == "empty":
        for p in tree.root.rglob("*.yaml"):
            p.write_text("")
    elif breakage == "unparsable":
        (tree.root / "vms" / "web.yaml").write_text("spec: [unclosed\n")
    else:
        target = str(tree.root / "no-such-dir")
    assert run("apply", target, "--prune", "--allow-data-loss", "--auto-approve") != 0
    assert domains(conn) == {"e2e_web": True}


def test_failing_libvirt_connection_deletes_nothing(conn: Any, tree: Tree,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    tree.put(vm("web"))
    assert run("apply", str(tree.root)) == 0
    cluster = tree.root / "cluster.yaml"
    cluster.write_text(cluster.read_text().replace(URI, "qemu+tcp://127.0.0.1:1/system"))
    tree.remove("web")
    assert run("apply", str(tree.root), "--prune", "--allow-data-loss") == 2
    assert "127.0.0.1:1" in capsys.readouterr().err
    assert domains(conn) == {"e2e_web": True}


def test_unmanaged_domain_with_colliding_name_is_never_touched(conn: Any, tree: Tree,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    xml = ("<domain type='test'><name>e2e_web</name><memory unit='MiB'>64</memory>"
           "<os><type>hvm</type></os></domain>")
    dom = conn.defineXML(xml)
    before = dom.XMLDesc()
    tree.put(vm("web"))
    assert run("apply", str(tree.root), "--allow-restart", "--allow-data-loss",
               "--prune") == 2
    assert "without virtsync's owner marker" in capsys.readouterr().err
    assert conn.lookupByName("e2e_web").XMLDesc() == before


def test_second_apply_fails_fast_naming_the_holder(conn: Any, tree: Tree, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    tree.put(vm("web"))
    with StateLock(tmp_path / "state", command="virtsync watch repo"):
        assert run("apply", str(tree.root)) == 2
    err = capsys.readouterr().err
    assert f"pid {os.getpid()}" in err and "virtsync watch repo" in err
    assert domains(conn) == {}


def test_secrets_never_printed(conn: Any, tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    tree.put(vm("web", user_data="#cloud-config\npassword: CANARY-7f3a\n"))
    assert run("apply", str(tree.root)) == 0
    tree.put(vm("web", user_data="#cloud-config\npassword: CANARY-7f3a-v2\n", cores=2))
    assert run("apply", str(tree.root), "--allow-restart") == 0
    applied = capsys.readouterr()
    assert run("status", str(tree.root), "-o", "json") == 0
    status = capsys.readouterr()
    assert "CANARY" not in applied.out + applied.err + status.out + status.err
    for dom in conn.listAllDomains():
        assert "CANARY" not in dom.XMLDesc()
    (row,) = json.loads(status.out)
    assert (row["name"], row["printableStatus"]) == ("web", "Running")


def test_plan_host_mode_and_stale_plan_file(conn: Any, tree: Tree, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    tree.put(vm("web"))
    plan_file = tmp_path / "plan.json"
    # Host mode: compare the tree with what the node runs. Exit 1 = changes.
    assert run("plan", str(tree.root), "-o", "json", "--out-file", str(plan_file)) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [c["actions"] for c in doc["changes"]] == [["create"], ["create", "start"]]
    assert run("apply", str(tree.root), "--plan", str(plan_file)) == 0
    assert domains(conn) == {"e2e_web": True}
    assert run("plan", str(tree.root), "--detailed-exitcode") == 0

    # A plan made before the tree changed is refused, and nothing happens.
    assert run("plan", str(tree.root), "--out-file", str(plan_file)) == 0
    tree.put(vm("web", cores=2))
    capsys.readouterr()
    assert run("apply", str(tree.root), "--plan", str(plan_file), "--allow-restart") == 2
    assert "stale plan" in capsys.readouterr().err
    assert conn.lookupByName("e2e_web").maxVcpus() == 1
    # ... and so is one made before live state changed.
    assert run("plan", str(tree.root), "--out-file", str(plan_file)) == 1
    conn.lookupByName("e2e_web").destroy()
    assert run("apply", str(tree.root), "--plan", str(plan_file), "--allow-restart") == 2
    assert "stale plan" in capsys.readouterr().err


def test_instancetype_change_replans_the_vms_using_it(conn: Any, tree: Tree,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    def instancetype(cpus: int) -> dict[str, Any]:
        return {"apiVersion": "instancetype.kubevirt.io/v1beta1",
                "kind": "VirtualMachineClusterInstancetype", "metadata": {"name": "small"},
                "spec": {"cpu": {"guest": cpus}, "memory": {"guest": "64Mi"}}}

    body = vm("sized")
    domain = body["spec"]["template"]["spec"]["domain"]
    del domain["cpu"], domain["memory"]
    body["spec"]["instancetype"] = {"name": "small"}
    (tree.root / "small.yaml").write_text(yaml.safe_dump(instancetype(1)))
    tree.put(body)
    assert run("apply", str(tree.root)) == 0
    assert conn.lookupByName("e2e_sized").maxVcpus() == 1
    assert run("plan", str(tree.root)) == 0

    (tree.root / "small.yaml").write_text(yaml.safe_dump(instancetype(2)))
    capsys.readouterr()
    assert run("plan", str(tree.root), "-o", "json") == 1
    changes = {c["name"]: c for c in json.loads(capsys.readouterr().out)["changes"]}
    assert changes["sized"]["disruption"] == "restart"
    assert changes["sized"]["fields"][0]["path"] == "spec.instancetype.revisionName"
    assert run("apply", str(tree.root), "--allow-restart") == 0
    assert conn.lookupByName("e2e_sized").maxVcpus() == 2
    assert run("plan", str(tree.root)) == 0
