"""`virtsync readiness` through the CLI (issue 10): on examples/ and on a tree with one VM
per reason; text, markdown (summary first) and JSON (validated against
schemas/readiness.schema.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from reconciler.cli import main

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas" / "readiness.schema.json").read_text())


def run(capsys: pytest.CaptureFixture[str], path: Path, output: str = "text") -> str:
    capsys.readouterr()
    assert main(["readiness", str(path), "-o", output]) == 0
    return capsys.readouterr().out


def report(capsys: pytest.CaptureFixture[str], path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(run(capsys, path, "json"))
    jsonschema.validate(doc, SCHEMA)
    return doc


def node(name: str, labels: dict[str, str], *, shared: bool, cpu: str = "Skylake",
         mib: int | None = 4096) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "uri": "test:///default", "labels": labels,
                           "cpuModel": cpu, "hostDiskDir": "/srv/hd"}
    if mib:
        out["memoryMiB"] = mib
    if shared:
        out.update(storageDir="/srv/shared", sharedStorage=True)
    return out


NODES = [
    node("a", {"pool": "shared", "cpu": "mixed"}, shared=True),
    node("b", {"pool": "shared"}, shared=True),
    node("c", {"pool": "local"}, shared=False, mib=2048),
    node("d", {"pool": "local"}, shared=False, mib=2048),
    node("e", {"pool": "solo"}, shared=False),
    node("f", {"pool": "other", "cpu": "mixed"}, shared=True, cpu="EPYC", mib=None),
]


def vm(name: str, selector: dict[str, str], *, memory: str | None = "256Mi",
       iface: dict[str, Any] | None = None, volume: dict[str, Any] | None = None,
       domain: dict[str, Any] | None = None, devices: dict[str, Any] | None = None,
       annotations: dict[str, str] | None = None, extra: dict[str, Any] | None = None,
       ) -> dict[str, Any]:
    dom: dict[str, Any] = {"devices": {
        "disks": [{"name": "root", "disk": {}}],
        "interfaces": [{"name": "default", **(iface or {"masquerade": {}})}],
        **(devices or {})}, **(domain or {})}
    if memory:
        dom["memory"] = {"guest": memory}
    meta: dict[str, Any] = {"name": name, "namespace": "ops"}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": meta,
            "spec": {"runStrategy": "Always", **(extra or {}), "template": {"spec": {
                "nodeSelector": selector, "domain": dom,
                "evictionStrategy": "LiveMigrate",
                "networks": [{"name": "default", "pod": {}}],
                "volumes": [{"name": "root", **(volume or {
                    "persistentVolumeClaim": {"claimName": f"{name}-root"}})}]}}}}


VMS = [
    vm("ok", {"pool": "shared"}),
    vm("local", {"pool": "local"}),
    vm("block", {"pool": "local"},
       annotations={"migration.virtsync.io/allowBlockMigration": "true"}),
    vm("bridge", {"pool": "shared"}, iface={"bridge": {}}),
    vm("gpu", {"pool": "shared"},
       devices={"gpus": [{"name": "g", "deviceName": "nvidia.com/GP102GL"}]}),
    vm("passthrough", {"cpu": "mixed"}, domain={"cpu": {"model": "host-passthrough"}}),
    vm("hostdisk", {"pool": "shared"},
       volume={"hostDisk": {"path": "/srv/hd/x.img", "type": "Disk"}}),
    vm("sev", {"pool": "shared"}, domain={"launchSecurity": {"sev": {}},
                                          "firmware": {"bootloader": {"efi": {}}}}),
    vm("solo", {"pool": "solo"}),
    vm("big", {"pool": "local"}, memory="8Gi"),
    vm("typed", {"pool": "shared"}, memory=None,
       extra={"instancetype": {"name": "u1.small"}}),
    # Second case: the instancetype's memory decides the fit (3 GiB > the local nodes' 2).
    vm("typedbig", {"pool": "local"}, memory=None,
       extra={"instancetype": {"name": "u1.large"}}),
]
INSTANCETYPE = {"apiVersion": "instancetype.kubevirt.io/v1beta1",
                "kind": "VirtualMachineClusterInstancetype", "metadata": {"name": "u1.small"},
                "spec": {"cpu": {"guest": 2}, "memory": {"guest": "1Gi"}}}


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "specs"
    root.mkdir()
    cluster = {"apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster",
               "metadata": {"name": "lab"}, "spec": {"nodes": NODES}}
    large = {**INSTANCETYPE, "metadata": {"name": "u1.large"},
             "spec": {"cpu": {"guest": 1}, "memory": {"guest": "3Gi"}}}
    docs = [cluster, INSTANCETYPE, large, *VMS]
    (root / "all.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    assert main(["validate", "--no-cache", str(root)]) == 0
    return root


def test_examples_report_in_every_format(capsys: pytest.CaptureFixture[str]) -> None:
    examples = ROOT / "examples"
    doc = report(capsys, examples)
    assert doc["summary"]["vms"] == 2
    assert {v["key"] for v in doc["vms"]} == {"VirtualMachine/demo/tiny",
                                              "VirtualMachine/demo/web"}
    text = run(capsys, examples)
    assert text.startswith("Readiness: 2 VM(s) on 1 node(s) (local)")
    assert text.index("Readiness:") < text.index("VirtualMachine/demo/tiny")
    md = run(capsys, examples, "markdown")
    assert md.startswith("<!-- virtsync-readiness -->")
    assert md.index("| VM | live migration |") < md.index("<details>")  # summary first


def test_each_reason_shows_per_vm_and_in_the_summary(
        tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = report(capsys, tree)
    vms = {v["key"].rsplit("/", 1)[1]: v for v in doc["vms"]}

    def first(name: str) -> str | None:
        reasons = vms[name]["migration"]["reasons"]
        return reasons[0]["reason"] if reasons else None

    assert (vms["ok"]["migration"]["migratable"], vms["ok"]["migration"]["method"]) == (
        True, "LiveMigration")
    assert vms["ok"]["storage"][0]["mode"] == "shared"
    assert first("local") == "DisksNotLiveMigratable"
    assert vms["local"]["storage"][0]["mode"] == "node-local"
    assert vms["block"]["migration"]["method"] == "BlockMigration"  # virtsync beyond RWX
    assert first("bridge") == "InterfaceNotLiveMigratable"
    assert vms["bridge"]["interfaces"][0]["survives_migration"] is False
    assert first("gpu") == "HostDeviceNotLiveMigratable"
    assert vms["gpu"]["security"]["host_devices"] == ["g"]
    assert first("passthrough") == "CPUModeLiveMigratable"
    assert first("hostdisk") == "DisksNotLiveMigratable"
    assert vms["hostdisk"]["storage"][0]["mode"] == "hostDisk"
    assert vms["hostdisk"]["security"]["host_disks"] == ["/srv/hd/x.img"]
    assert first("sev") == "SEVNotLiveMigratable"
    assert vms["sev"]["security"] == {"host_disks": [], "host_devices": [],
                                      "firmware": "EFI secure boot", "launch_security": "sev"}
    assert first("solo") == "NoMigrationTarget"
    assert vms["big"]["shape"]["fits"] == []
    assert "insufficient memory" in vms["big"]["shape"]["unschedulable_reason"]
    typed = vms["typed"]["shape"]
    assert (typed["instancetype"], typed["vcpus"], typed["memory_mib"]) == ("u1.small", 2, 1024)
    assert (vms["typedbig"]["shape"]["memory_mib"], vms["typedbig"]["shape"]["fits"]) == (
        3072, [])
    # A LiveMigrate VM that cannot migrate blocks a drain, saying why.
    assert vms["bridge"]["shutdown"]["drain"].startswith("block: evictionStrategy LiveMigrate")
    assert vms["ok"]["shutdown"]["drain"].startswith("migrate:")
    # Capacity: f has none configured, so it fits without a check, and the report says so.
    assert doc["capacity_unknown"] == ["f"]
    assert "capacity not configured for f" in vms["passthrough"]["shape"]["capacity_note"]

    summary = doc["summary"]
    assert summary["vms"] == len(VMS)
    assert summary["migratable"] == 3  # ok, block, typed
    assert summary["not_migratable"] == {
        "CPUModeLiveMigratable": 1, "DisksNotLiveMigratable": 2,
        "HostDeviceNotLiveMigratable": 1, "InterfaceNotLiveMigratable": 1,
        "NoMigrationTarget": 3, "SEVNotLiveMigratable": 1}
    assert summary["unschedulable"] == 2 and summary["interfaces_lost_on_migration"] == 1
    assert summary["host_boundary"] == 3  # gpu, hostdisk, sev

    md = run(capsys, tree, "markdown")
    assert "| `VirtualMachine/ops/bridge` | no: `InterfaceNotLiveMigratable` |" in md
    assert "| `VirtualMachine/ops/big` | no: `NoMigrationTarget` | node-local | **nowhere** |" \
        in md
    text = run(capsys, tree)
    assert "Not live-migratable, by first reason: CPUModeLiveMigratable 1, " \
           "DisksNotLiveMigratable 2," in text


def test_invalid_tree_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\n")
    assert main(["readiness", str(tmp_path)]) != 0
    assert "validation error" in capsys.readouterr().err
