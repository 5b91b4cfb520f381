"""The libvirt lane's end-to-end scenarios through the CLI, on the kubevirt backend
against the Kubernetes API model (tests/kube: a MODEL of the API server and KubeVirt,
see its README): apply → empty plan → change → apply → prune keeping disks; the
empty-source guard; a stale saved plan refused; an operator stop respected."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kube.apimodel import KubeModel
from kube_tree import KUBE_CLUSTER, vm, write

Run = Callable[..., tuple[int, str, str]]
KV = "kubevirt.io/v1"


def _vm(model: KubeModel, name: str) -> dict[str, Any] | None:
    return model.get(KV, "VirtualMachine", "default", name)


def _inventory(model: KubeModel) -> list[str]:
    (cm,) = model.objects("v1", "ConfigMap", "default")
    doc = json.loads(cm["data"]["inventory.json"])
    return sorted(f"{o['kind']}/{o['name']}" for o in doc["objects"])


def _apply(run_cli: Run, tree: Path, *flags: str) -> tuple[int, str, str]:
    return run_cli("apply", str(tree), "--auto-approve", *flags)


def test_apply_empty_plan_change_apply_prune_keeping_disks(
        kube_env: Path, kube_model: KubeModel, run_cli: Run) -> None:
    tree = kube_env
    write(tree, {"cluster.yaml": KUBE_CLUSTER, "vms/web.yaml": vm("web"),
                 "vms/db.yaml": vm("db", run="Manual")})
    code, out, err = run_cli("plan", str(tree))
    assert code == 1, err
    assert "Plan: 3 to create" in out  # the Cluster object and two VMs

    code, out, err = _apply(run_cli, tree)
    assert code == 0, err
    web = _vm(kube_model, "web")
    assert web is not None and web["spec"]["runStrategy"] == "Always"
    assert web["metadata"]["labels"]["virtsync.io/managed-by"] == "virtsync"
    assert any(f["manager"] == "virtsync" and f["operation"] == "Apply"
               for f in web["metadata"]["managedFields"])
    # KubeVirt (the model) filled in identity virtsync never wrote
    firmware = web["spec"]["template"]["spec"]["domain"]["firmware"]
    assert firmware["uuid"] and firmware["serial"]
    assert web["status"]["printableStatus"] == "Running"
    assert _inventory(kube_model) == ["Cluster/kube", "VirtualMachine/db", "VirtualMachine/web"]

    # server-filled fields (firmware uuid/serial, MACs, machine type, status) are no drift
    code, out, err = run_cli("plan", str(tree))
    assert code == 0, out + err
    assert "No changes" in out

    # a change: more memory (LiveUpdate: live, by migration) and a new label
    write(tree, {"vms/web.yaml": vm("web", memory="2Gi")})
    code, out, err = run_cli("plan", str(tree), "-o", "json")
    assert code == 1, err
    (change,) = json.loads(out)["changes"]
    assert change["name"] == "web" and change["disruption"] == "live"
    code, out, err = _apply(run_cli, tree)
    assert code == 0, err
    assert _vm(kube_model, "web")["spec"]["template"]["spec"]["domain"]["memory"][  # type: ignore[index]
        "guest"] == "2Gi"
    code, out, err = run_cli("plan", str(tree))
    assert code == 0, out + err

    # prune keeping disks: KubeVirt created web's DataVolume from its template, owned
    # by the VM (Kubernetes' garbage collector deletes it with the VM unless orphaned)
    dv = kube_model.get("cdi.kubevirt.io/v1beta1", "DataVolume", "default", "web-root")
    assert dv is not None and dv["metadata"]["ownerReferences"][0]["name"] == "web"
    write(tree, {"vms/web.yaml": None})
    code, out, err = _apply(run_cli, tree)  # without --prune: listed, skipped
    assert code == 0 and _vm(kube_model, "web") is not None, err
    code, out, err = _apply(run_cli, tree, "--prune")
    assert code == 0, err
    assert _vm(kube_model, "web") is None
    dv = kube_model.get("cdi.kubevirt.io/v1beta1", "DataVolume", "default", "web-root")
    assert dv is not None and not dv["metadata"].get("ownerReferences")  # orphaned: kept
    assert _vm(kube_model, "db") is not None
    assert _inventory(kube_model) == ["Cluster/kube", "VirtualMachine/db"]
    # the other disk policy: `Delete` in git when it was applied takes the DataVolume
    # with the VM, and only with --allow-data-loss
    write(tree, {"vms/db.yaml": vm("db", run="Manual", disk_policy="Delete")})
    assert _apply(run_cli, tree)[0] == 0
    write(tree, {"vms/db.yaml": None})
    code, out, err = _apply(run_cli, tree, "--prune")
    assert code == 1 and "--allow-data-loss" in err and _vm(kube_model, "db") is not None
    code, out, err = _apply(run_cli, tree, "--prune", "--allow-data-loss")
    assert code == 0, out + err
    assert _vm(kube_model, "db") is None
    assert kube_model.get("cdi.kubevirt.io/v1beta1", "DataVolume", "default", "db-root") is None
    assert kube_model.get("cdi.kubevirt.io/v1beta1", "DataVolume", "default", "web-root")


def test_empty_source_guard_and_prune_cap(kube_env: Path, kube_model: KubeModel,
                                          run_cli: Run) -> None:
    tree = kube_env
    names = ("a", "b", "c", "d", "e", "f")
    write(tree, {"cluster.yaml": KUBE_CLUSTER,
                 **{f"vms/{n}.yaml": vm(n, run="Halted") for n in names}})
    assert _apply(run_cli, tree)[0] == 0
    # a tree with nothing in it (a bad checkout) is refused before the cluster is asked
    empty = tree.parent / "empty"
    empty.mkdir()
    code, _, err = _apply(run_cli, empty, "--prune")
    assert code != 0 and "no objects found" in err
    # every VM gone but the Cluster object: over the prune cap, nothing deleted
    for n in names:
        write(tree, {f"vms/{n}.yaml": None})
    code, _, err = _apply(run_cli, tree, "--prune")
    assert code == 1 and "over the cap" in err
    assert len(kube_model.objects(KV, "VirtualMachine", "default")) == len(names)


def test_stale_saved_plan_is_refused(kube_env: Path, kube_model: KubeModel, run_cli: Run,
                                     tmp_path: Path) -> None:
    tree = kube_env
    write(tree, {"cluster.yaml": KUBE_CLUSTER, "vms/web.yaml": vm("web")})
    assert _apply(run_cli, tree)[0] == 0
    write(tree, {"vms/web.yaml": vm("web", sockets=2)})
    saved = tmp_path / "plan.json"
    code, _, err = run_cli("plan", str(tree), "--out-file", str(saved))
    assert code == 1, err
    # someone else changes a field virtsync applied (kubectl edit takes it over)
    web = _vm(kube_model, "web")
    assert web is not None
    kube_model.put_object({"apiVersion": KV, "kind": "VirtualMachine",
                           "metadata": {"name": "web", "namespace": "default"},
                           "spec": {"template": {"spec": {"domain": {
                               "memory": {"guest": "3Gi"}}}}}}, manager="kubectl-edit")
    code, _, err = _apply(run_cli, tree, "--plan", str(saved))
    assert code != 0 and "stale" in err, err
    assert _vm(kube_model, "web")["spec"]["template"]["spec"]["domain"]["cpu"][  # type: ignore[index]
        "sockets"] == 1


def test_operator_stop_is_respected_until_git_or_start(kube_env: Path, kube_model: KubeModel,
                                                      run_cli: Run) -> None:
    tree = kube_env
    write(tree, {"cluster.yaml": KUBE_CLUSTER, "vms/web.yaml": vm("web"),
                 "vms/api.yaml": vm("api", run="RerunOnFailure")})
    assert _apply(run_cli, tree)[0] == 0
    for name in ("web", "api"):
        code, out, err = run_cli("stop", name, "--path", str(tree))
        assert code == 0, err
        assert _vm(kube_model, name)["spec"]["runStrategy"] == "Halted"  # type: ignore[index]
        assert _vm(kube_model, name)["status"]["printableStatus"] == "Stopped"  # type: ignore[index]
    code, out, err = run_cli("plan", str(tree))
    assert code == 0, out + err  # the stop is power state, not drift; no start planned
    # a git change elsewhere is applied without starting the VM (rule 16)
    write(tree, {"vms/web.yaml": vm("web", memory="2Gi")})
    code, _, err = _apply(run_cli, tree)
    assert code == 0, err
    web = _vm(kube_model, "web")
    assert web is not None and web["spec"]["runStrategy"] == "Halted"
    assert web["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "2Gi"
    assert web["status"]["printableStatus"] == "Stopped"
    # `virtsync start` ends it
    code, _, err = run_cli("start", "web", "--path", str(tree))
    assert code == 0, err
    assert _vm(kube_model, "web")["spec"]["runStrategy"] == "Always"  # type: ignore[index]
    assert run_cli("plan", str(tree))[0] == 0
    # git changing runStrategy ends it too: api now Always in git → started
    write(tree, {"vms/api.yaml": vm("api", run="Always")})
    code, _, err = _apply(run_cli, tree)
    assert code == 0, err
    api = _vm(kube_model, "api")
    assert api is not None and api["spec"]["runStrategy"] == "Always"
    assert api["status"]["printableStatus"] == "Running"


SECRET_VM = """\
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: {name}
  namespace: default
spec:
  runStrategy: {run}
  template:
    spec:
      domain:
        memory:
          guest: 1Gi
        devices:
          disks:
          - name: seed
            disk: {{}}
      volumes:
      - name: seed
        cloudInitNoCloud:
          {field}: |
            {secret}
"""


@pytest.mark.parametrize(("name", "run", "field", "secret"), [
    ("seeded", "Halted", "userData", "password: s3cret-canary"),
    ("netseed", "Always", "networkData", "psk: s3cret-canary"),
])
def test_a_secret_is_sent_to_the_dry_run_as_itself_and_plans_no_change(
        kube_env: Path, kube_model: KubeModel, run_cli: Run,
        name: str, run: str, field: str, secret: str) -> None:
    """The validation cache may hand planning a secret only as its digest (rule 10);
    the kubevirt backend sends the desired object to the server's dry run, so it must
    plan from the real value: a digest there would be a change, every time."""
    tree = kube_env
    write(tree, {"cluster.yaml": KUBE_CLUSTER,
                 f"vms/{name}.yaml": SECRET_VM.format(name=name, run=run, field=field,
                                                      secret=secret)})
    code, _, err = _apply(run_cli, tree)
    assert code == 0, err
    for _ in range(2):  # the second plan reads the tree from a warm cache
        kube_model.clear_requests()
        code, out, err = run_cli("plan", str(tree))
        assert code == 0 and "No changes" in out, out + err
        dry = [r for r in kube_model.requests
               if r.method == "PATCH" and r.query.get("dryRun") == "All"]
        assert dry, "the plan asked the server"
        assert all("sha256:" not in json.dumps(r.body) for r in dry)
        assert any("s3cret-canary" in json.dumps(r.body) for r in dry)
    assert "s3cret-canary" not in out + err
