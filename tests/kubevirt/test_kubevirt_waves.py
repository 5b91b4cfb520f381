"""DataVolumes, instancetypes and preferences are applied and pruned with the VMs that
use them, in waves: what VMs refer to first (instancetypes and preferences, then
DataVolumes, then VMs), deletions in exactly the reverse order."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from kube.apimodel import KubeModel
from kube_tree import APP, DATA, KUBE_CLUSTER, SIZES, write

Run = Callable[..., tuple[int, str, str]]

KINDS = {"virtualmachineclusterinstancetypes": "VirtualMachineClusterInstancetype",
         "virtualmachinepreferences": "VirtualMachinePreference",
         "datavolumes": "DataVolume", "virtualmachines": "VirtualMachine"}


def _order(model: KubeModel, method: str) -> list[str]:
    """The kinds changed, in request order (dry runs and the inventory left out)."""
    out: list[str] = []
    for r in model.requests:
        plural = r.path.rstrip("/").split("/")[-2] if r.method != "POST" else ""
        if r.method == method and "dryRun" not in r.query and plural in KINDS \
                and KINDS[plural] not in out:
            out.append(KINDS[plural])
    return out


def test_config_objects_applied_and_pruned_in_waves(kube_env: Path, kube_model: KubeModel,
                                                    run_cli: Run) -> None:
    tree = kube_env
    write(tree, {"cluster.yaml": KUBE_CLUSTER, "sizes.yaml": SIZES, "data.yaml": DATA,
                 "vms/app.yaml": APP})
    code, out, err = run_cli("apply", str(tree), "--auto-approve")
    assert code == 0, out + err
    assert _order(kube_model, "PATCH") == ["VirtualMachineClusterInstancetype",
                                           "VirtualMachinePreference", "DataVolume",
                                           "VirtualMachine"]
    small = kube_model.get("instancetype.kubevirt.io/v1beta1",
                           "VirtualMachineClusterInstancetype", None, "small")
    assert small is not None and small["metadata"]["labels"]["virtsync.io/managed-by"] == \
        "virtsync"
    assert kube_model.get("cdi.kubevirt.io/v1beta1", "DataVolume", "default", "data")
    app = kube_model.get("kubevirt.io/v1", "VirtualMachine", "default", "app")
    # sent as git holds it: KubeVirt names the ControllerRevision, not virtsync
    assert app is not None and "revisionName" not in app["spec"]["instancetype"]
    assert run_cli("plan", str(tree))[0] == 0  # the instancetype & co. compare clean too
    # a change to the instancetype alone: applied; running VMs keep their revision
    # (KubeVirt's ControllerRevision) until they restart, so the VM is no change
    write(tree, {"sizes.yaml": SIZES.replace("guest: 1Gi", "guest: 2Gi")})
    code, out, err = run_cli("plan", str(tree), "-o", "json")
    assert code == 1 and [c["kind"] for c in json.loads(out)["changes"]] == \
        ["VirtualMachineClusterInstancetype"]
    assert run_cli("apply", str(tree), "--auto-approve")[0] == 0
    # everything removed but the Cluster: the DataVolume is data, so it needs consent
    write(tree, {"sizes.yaml": None, "data.yaml": None, "vms/app.yaml": None})
    kube_model.clear_requests()
    code, _, err = run_cli("apply", str(tree), "--auto-approve", "--prune",
                           "--max-prune", "4")
    assert code == 1 and "--allow-data-loss" in err
    assert kube_model.get("kubevirt.io/v1", "VirtualMachine", "default", "app") is not None
    code, out, err = run_cli("apply", str(tree), "--auto-approve", "--prune",
                             "--max-prune", "4", "--allow-data-loss")
    assert code == 0, out + err
    assert _order(kube_model, "DELETE") == ["VirtualMachine", "DataVolume",
                                            "VirtualMachinePreference",
                                            "VirtualMachineClusterInstancetype"]
    assert kube_model.get("cdi.kubevirt.io/v1beta1", "DataVolume", "default", "data") is None
