"""Plans know migration (issue 10), through the CLI on the memory backend: a running VM's
node change is the action `migrate` (class live) when it is migratable, else a replace
saying why; `schedulable: false` drains by eviction strategy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from backends import memory
from backends.test_memory_backend import plan_json
from reconciler.cli import main
from reconciler.core.model import ObjectKey

pytestmark = pytest.mark.usefixtures("memory_backend")
from backends.test_memory_backend import memory_backend  # noqa: E402,F401  (the fixture)


def node(name: str, *, shared: bool = True, schedulable: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "uri": "test:///default", "labels": {"host": name},
                           "cpuModel": "Skylake", "schedulable": schedulable}
    if shared:
        out.update(storageDir="/srv/shared", sharedStorage=True)
    return out


def vm(name: str, host: str, *, strategy: str | None = None, bridge: bool = False,
       annotations: dict[str, str] | None = None) -> dict[str, Any]:
    binding = {"bridge": {}} if bridge else {"masquerade": {}}
    spec: dict[str, Any] = {
        "nodeSelector": {"host": host},
        "domain": {"memory": {"guest": "64Mi"}, "devices": {
            "disks": [{"name": "root", "disk": {}}],
            "interfaces": [{"name": "default", **binding}]}},
        "networks": [{"name": "default", "pod": {}}],
        "volumes": [{"name": "root", "persistentVolumeClaim": {"claimName": f"{name}-root"}}],
    }
    if strategy:
        spec["evictionStrategy"] = strategy
    meta: dict[str, Any] = {"name": name, "namespace": "shop"}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": meta,
            "spec": {"runStrategy": "Always", "template": {"spec": spec}}}


def write(root: Path, nodes: list[dict[str, Any]], *vms: dict[str, Any]) -> Path:
    root.mkdir(exist_ok=True)
    for old in root.glob("*.yaml"):
        old.unlink()
    (root / "cluster.yaml").write_text(yaml.safe_dump({
        "apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "c"},
        "spec": {"backend": "memory", "nodes": nodes}}))
    for body in vms:
        (root / f"vm-{body['metadata']['name']}.yaml").write_text(yaml.safe_dump(body))
    return root


def live_migratable(root: Path, capsys: pytest.CaptureFixture[str],
                    name: str) -> dict[str, Any]:
    """The LiveMigratable condition `virtsync status -o json` shows for one VM."""
    capsys.readouterr()
    assert main(["status", str(root), "-o", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    (row,) = [r for r in rows if r["name"] == name]
    (cond,) = [c for c in row["conditions"] if c["type"] == "LiveMigratable"]
    found: dict[str, Any] = cond
    return found


def key(name: str) -> ObjectKey:
    return ObjectKey("VirtualMachine", "shop", name)


def vm_change(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in doc["changes"] if c["name"] == name)
    return found


def test_selector_edit_live_migrates_a_running_vm_on_shared_storage(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nodes = [node("a"), node("b")]
    root = write(tmp_path / "specs", nodes, vm("web", "a"))
    assert main(["apply", str(root)]) == 0
    assert memory.STORE[key("web")].node == "a"
    # status: pinned to a by its selector, it has nowhere to go (KubeVirt would keep a
    # migration Pending)
    assert live_migratable(root, capsys, "web") == {
        "type": "LiveMigratable", "status": False, "reason": "NoMigrationTarget",
        "message": "no node other than a can hold it"}

    write(root, nodes, vm("web", "b"))
    change = vm_change(plan_json(root, capsys), "web")
    # The new selector is recorded (update), then the guest moves (migrate).
    assert (change["actions"], change["disruption"]) == (["update", "migrate"], "live")
    assert change["placement"] == {"node": "b", "previous_node": "a", "reason": ""}
    assert "live migration a → b: live-migratable, memory only" in change["cause"]

    capsys.readouterr()
    main(["plan", str(root)])
    text = capsys.readouterr().out
    assert "will be live-migrated: migrate a → b" in text
    assert "1 to migrate" in text
    main(["plan", str(root), "-o", "markdown"])
    md = capsys.readouterr().out
    assert "> [!NOTE]\n> **Live migrations: 1 object**" in md
    assert "placement: a → b (live migration)" in md

    # A saved plan carries the migration (JSON "migrate") and is executed as planned.
    saved = tmp_path / "plan.json"
    main(["plan", str(root), "--out-file", str(saved)])
    assert main(["apply", str(root), "--plan", str(saved)]) == 0  # live: no --allow-restart
    ((moved, source, target, policy),) = memory.MIGRATIONS
    assert (moved, source, target) == (key("web"), "a", "b")
    assert policy.completion_timeout_per_gib == 150  # KubeVirt's default
    assert memory.STORE[key("web")].node == "b" and memory.STORE[key("web")].running
    assert ("replace", key("web")) not in memory.CALLS
    assert plan_json(root, capsys)["changes"] == []


def test_node_local_claim_needs_block_migration_allowed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Second case, other shapes: node-local storage refuses a claim (KubeVirt's RWX rule)
    until the VM's annotation allows block migration, which reaches the backend."""
    nodes = [node("n1", shared=False), node("n2", shared=False)]
    root = write(tmp_path / "specs", nodes, vm("db", "n1"))
    assert main(["apply", str(root)]) == 0

    write(root, nodes, vm("db", "n2"))
    change = vm_change(plan_json(root, capsys), "db")
    assert change["actions"] == ["delete", "create"]  # a replace, saying why
    assert "not live-migratable: DisksNotLiveMigratable: claim db-root" in change["cause"]
    assert main(["apply", str(root)]) != 0  # a replace still needs --allow-restart
    assert memory.STORE[key("db")].node == "n1"

    allow = {"migration.virtsync.io/allowBlockMigration": "true",
             "migration.virtsync.io/bandwidthPerMigration": "64Mi"}
    write(root, nodes, vm("db", "n2", annotations=allow))
    change = vm_change(plan_json(root, capsys), "db")
    assert "migrate" in change["actions"] and change["disruption"] == "live"
    assert "block migration" in change["cause"]
    assert main(["apply", str(root)]) == 0
    ((_, source, target, policy),) = memory.MIGRATIONS
    assert (source, target) == ("n1", "n2")
    assert policy.allow_block_migration and policy.bandwidth_bytes == 64 * 1024 * 1024


def test_cordoned_node_drains_by_eviction_strategy(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """schedulable: false in git drains the node: LiveMigrate migrates, a non-migratable
    LiveMigrateIfPossible VM is shut down and moved (a replace), a non-migratable
    LiveMigrate VM blocks (stays, saying why), External is left alone."""
    vms = [vm("mover", "any", strategy="LiveMigrate"),
           vm("maybe", "any", strategy="LiveMigrateIfPossible", bridge=True),
           vm("stuck", "any", strategy="LiveMigrate", bridge=True),
           vm("ext", "any", strategy="External")]
    for body in vms:  # both nodes match: only the cordon moves them
        body["spec"]["template"]["spec"]["nodeSelector"] = {"pool": "p"}
    nodes = [{**node("a"), "labels": {"pool": "p"}, "memoryMiB": 8192},
             {**node("b"), "labels": {"pool": "p"}, "memoryMiB": 1024}]
    root = write(tmp_path / "specs", nodes, *vms)
    assert main(["apply", str(root)]) == 0
    assert {memory.STORE[key(v)].node for v in ("mover", "maybe", "stuck", "ext")} == {"a"}
    # status shows KubeVirt's LiveMigratable condition before the drain is asked for
    assert live_migratable(root, capsys, "mover") == {
        "type": "LiveMigratable", "status": True, "reason": "",
        "message": "live-migratable, memory only (shared storage); targets: b"}
    stuck = live_migratable(root, capsys, "stuck")
    assert (stuck["status"], stuck["reason"]) == (False, "InterfaceNotLiveMigratable")

    nodes[0]["schedulable"] = False
    write(root, nodes, *vms)
    doc = plan_json(root, capsys)
    assert vm_change(doc, "mover")["actions"] == ["migrate"]
    maybe = vm_change(doc, "maybe")
    assert maybe["actions"] == ["delete", "create"]
    assert "drain of a: evictionStrategy LiveMigrateIfPossible, not live-migratable " \
           "(InterfaceNotLiveMigratable" in maybe["cause"]
    names = {c["name"] for c in doc["changes"]}
    assert "stuck" not in names and "ext" not in names  # they stay: nothing to do

    capsys.readouterr()
    main(["plan", str(root)])
    text = capsys.readouterr().out
    assert "migrate a → b" in text
    assert main(["apply", str(root), "--allow-restart"]) == 0
    assert [m[0].name for m in memory.MIGRATIONS] == ["mover"]
    assert memory.STORE[key("maybe")].node == "b"
    assert memory.STORE[key("stuck")].node == "a" and memory.STORE[key("ext")].node == "a"
