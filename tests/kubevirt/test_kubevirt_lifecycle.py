"""`virtsync status`, `migrate` and `pin --from-cluster` on the kubevirt backend, through
the CLI against the Kubernetes API model (tests/kube: a MODEL of KubeVirt)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from kube.apimodel import KubeModel
from kube_tree import KUBE_CLUSTER, vm, write

Run = Callable[..., tuple[int, str, str]]
KV = "kubevirt.io/v1"


def _status(run_cli: Run, tree: Path) -> dict[str, dict[str, object]]:
    code, out, err = run_cli("status", str(tree), "-o", "json")
    assert code == 0, err
    return {row["name"]: row for row in json.loads(out)}


def _conditions(row: dict[str, object]) -> dict[str, bool]:
    return {c["type"]: c["status"] for c in row["conditions"]}  # type: ignore[attr-defined]


def test_status_reads_printable_status_and_conditions(kube_env: Path, kube_model: KubeModel,
                                                      run_cli: Run) -> None:
    tree = kube_env
    write(tree, {"cluster.yaml": KUBE_CLUSTER, "vms/web.yaml": vm("web"),
                 "vms/db.yaml": vm("db", run="Halted")})
    assert run_cli("apply", str(tree), "--auto-approve")[0] == 0
    rows = _status(run_cli, tree)
    assert set(rows) == {"web", "db"}  # VMs only, not the DataVolumes or the Cluster
    web, db = rows["web"], rows["db"]
    assert (web["printableStatus"], web["ready"], web["drift"]) == ("Running", True, False)
    assert web["node"] == "node-a"  # where the running instance is
    assert _conditions(web)["Ready"] is True and "LiveMigratable" in _conditions(web)
    assert (db["printableStatus"], db["ready"]) == ("Stopped", False)
    # someone adds a field KubeVirt cannot update live: RestartRequired. Not drift: git
    # never set that field, and virtsync compares only the fields it manages
    kube_model.put_object({"apiVersion": KV, "kind": "VirtualMachine",
                           "metadata": {"name": "web", "namespace": "default"},
                           "spec": {"template": {"spec": {"domain": {"cpu": {"cores": 2}}}}}},
                          manager="kubectl")
    web = _status(run_cli, tree)["web"]
    assert _conditions(web)["RestartRequired"] is True
    assert web["drift"] is False
    # a field virtsync applied, changed by someone else: drift
    kube_model.put_object({"apiVersion": KV, "kind": "VirtualMachine",
                           "metadata": {"name": "web", "namespace": "default"},
                           "spec": {"template": {"spec": {"domain": {"cpu": {"sockets": 3}}}}}},
                          manager="kubectl")
    assert _status(run_cli, tree)["web"]["drift"] is True
    code, out, _ = run_cli("status", str(tree))
    assert code == 0 and "Running" in out and "node-a" in out


def test_migrate_creates_a_vmim_and_follows_it(kube_env: Path, kube_model: KubeModel,
                                               run_cli: Run) -> None:
    tree = kube_env
    write(tree, {"cluster.yaml": KUBE_CLUSTER, "vms/web.yaml": vm("web", shared=True),
                 "vms/local.yaml": vm("local")})
    # KubeVirt moves the migration on by itself while virtsync watches it
    kube_model.controller.start_ticking()
    assert run_cli("apply", str(tree), "--auto-approve")[0] == 0
    # a VM on a node-local (ReadWriteOnce) disk: KubeVirt refuses, and says why
    code, _, err = run_cli("migrate", "local", "--path", str(tree), "--wait")
    assert code != 0 and "DisksNotLiveMigratable" in err
    code, out, err = run_cli("migrate", "web", "--path", str(tree), "--to", "node-b", "--wait")
    assert code == 0, err
    assert "web migrated node-a → node-b" in out
    (mig,) = kube_model.objects(KV, "VirtualMachineInstanceMigration", "default")
    assert mig["spec"] == {"vmiName": "web",
                           "addedNodeSelector": {"kubernetes.io/hostname": "node-b"}}
    assert mig["status"]["phase"] == "Succeeded"
    assert mig["metadata"]["labels"]["virtsync.io/managed-by"] == "virtsync"
    # followed by a watch on that one object, from the version its creation returned
    watches = [r for r in kube_model.requests if r.query.get("watch") == "true"]
    assert watches and all(r.path.endswith("/virtualmachineinstancemigrations")
                           and r.query["fieldSelector"] == f"metadata.name={mig['metadata']['name']}"
                           and r.query["resourceVersion"] for r in watches)
    vmi = kube_model.get(KV, "VirtualMachineInstance", "default", "web")
    assert vmi is not None and vmi["status"]["nodeName"] == "node-b"
    # a failed migration: an error, the guest stays where it was
    kube_model.controller.fail_at = "Running"
    code, out, err = run_cli("migrate", "web", "--path", str(tree), "--wait")
    assert code != 0 and "failed" in err and "keeps running" in err
    vmi = kube_model.get(KV, "VirtualMachineInstance", "default", "web")
    assert vmi is not None and vmi["status"]["nodeName"] == "node-b"
    # a stopped VM does not migrate
    write(tree, {"vms/web.yaml": vm("web", run="Halted", shared=True)})
    code, out, err = run_cli("apply", str(tree), "--auto-approve")
    assert code == 0, out + err
    code, _, err = run_cli("migrate", "web", "--path", str(tree), "--wait")
    assert code != 0 and "VirtualMachine/default/web is not a VM virtsync runs" in err


def test_pin_from_cluster_keeps_identity_when_recreated(kube_env: Path, kube_model: KubeModel,
                                                        run_cli: Run) -> None:
    tree = kube_env
    write(tree, {"cluster.yaml": KUBE_CLUSTER, "vms/web.yaml": vm("web"),
                 "vms/db.yaml": vm("db", run="Manual")})
    assert run_cli("apply", str(tree), "--auto-approve")[0] == 0
    live = {n: kube_model.get(KV, "VirtualMachine", "default", n) for n in ("web", "db")}
    code, _, err = run_cli("pin", str(tree), "--from-cluster")
    assert code == 0, err
    for name, obj in live.items():
        assert obj is not None
        firmware = obj["spec"]["template"]["spec"]["domain"]["firmware"]
        text = (tree / "vms" / f"{name}.yaml").read_text()
        assert f'uuid: "{firmware["uuid"]}"' in text and f'serial: "{firmware["serial"]}"' in text
    # pinned values equal the live ones: no change; a second pin writes nothing
    assert run_cli("plan", str(tree))[0] == 0
    assert "0 file(s) changed" in run_cli("pin", str(tree), "--from-cluster")[2]
    # the VM recreated (another cluster, or deleted by hand) gets the same identity
    web = live["web"]
    assert web is not None
    kube_model.delete_object(KV, "VirtualMachine", "default", "web")
    assert run_cli("apply", str(tree), "--auto-approve")[0] == 0
    again = kube_model.get(KV, "VirtualMachine", "default", "web")
    assert again is not None and again["metadata"]["uid"] != web["metadata"]["uid"]
    assert again["spec"]["template"]["spec"]["domain"]["firmware"] == \
        web["spec"]["template"]["spec"]["domain"]["firmware"]


def test_rename_replaces_keeping_identity_and_disks(kube_env: Path, kube_model: KubeModel,
                                                    run_cli: Run) -> None:
    """Rule 17 on KubeVirt: a VM renamed in git (found by its pinned identity) is the old
    object deleted, keeping its DataVolumes, and the new one created with its identity."""
    tree = kube_env
    write(tree, {"cluster.yaml": KUBE_CLUSTER, "vms/web.yaml": vm("web")})
    assert run_cli("apply", str(tree), "--auto-approve")[0] == 0
    assert run_cli("pin", str(tree), "--from-cluster")[0] == 0
    old = kube_model.get(KV, "VirtualMachine", "default", "web")
    assert old is not None
    dv = kube_model.get("cdi.kubevirt.io/v1beta1", "DataVolume", "default", "web-root")
    assert dv is not None and dv["metadata"]["ownerReferences"][0]["uid"] == \
        old["metadata"]["uid"]  # KubeVirt's, from the template
    pinned = (tree / "vms" / "web.yaml").read_text()
    write(tree, {"vms/web.yaml": None,
                 "vms/front.yaml": pinned.replace("name: web\n", "name: front\n", 1)})
    code, out, err = run_cli("plan", str(tree))
    assert code == 1 and "renamed from VirtualMachine/default/web" in out, out + err
    code, out, err = run_cli("apply", str(tree), "--auto-approve", "--allow-restart")
    assert code == 0, out + err
    assert kube_model.get(KV, "VirtualMachine", "default", "web") is None
    front = kube_model.get(KV, "VirtualMachine", "default", "front")
    assert front is not None
    firmware = old["spec"]["template"]["spec"]["domain"]["firmware"]
    assert front["spec"]["template"]["spec"]["domain"]["firmware"] == firmware
    dv = kube_model.get("cdi.kubevirt.io/v1beta1", "DataVolume", "default", "web-root")
    assert dv is not None and not dv["metadata"].get("ownerReferences")
    assert run_cli("plan", str(tree))[0] == 0
