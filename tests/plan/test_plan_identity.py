"""plan(X, X) is empty: for every upstream example, and for live objects carrying the
fields KubeVirt and the API server fill in."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from plan_helpers import FP, LIBVIRT
from refdata import REFERENCE

from reconciler.core.model import Manifest
from reconciler.planning.plan import make_plan
from reconciler.planning.plan_model import Observed
from reconciler.tree.loader import load_bytes


def _reference_manifests() -> list[tuple[str, list[Manifest]]]:
    out = []
    for path in sorted(REFERENCE.rglob("*.yaml")):
        loaded = load_bytes(path.read_bytes(), str(path.relative_to(REFERENCE)))
        if loaded.manifests:
            out.append((loaded.path, list(loaded.manifests)))
    return out


FILES = _reference_manifests() if REFERENCE.exists() else []
VMS = [(f"{name}#{m.source.doc}", m) for name, ms in FILES for m in ms
       if m.kind == "VirtualMachine"]


@pytest.mark.skipif(not REFERENCE.exists(), reason="reference data not available")
def test_reference_is_there() -> None:
    assert len(FILES) > 50 and len(VMS) >= 10


@pytest.mark.parametrize(("name", "docs"), FILES, ids=[f for f, _ in FILES])
def test_plan_of_same_is_empty(name: str, docs: list[Manifest]) -> None:
    plan = make_plan(docs, [Observed(m) for m in docs], fingerprints=FP, profile=LIBVIRT)
    assert plan.empty, [(str(c.key), [f.path for f in c.fields]) for c in plan.changes]
    assert plan.summary.changes == 0 and plan.summary.unchanged == len(docs)


def _dict(parent: dict[str, Any], key: str) -> dict[str, Any]:
    if not isinstance(parent.get(key), dict):
        parent[key] = {}
    return parent[key]  # type: ignore[no-any-return]


def server_filled(body: dict[str, Any]) -> dict[str, Any]:
    """What KubeVirt on a cluster reports for a VM applied from `body`."""
    live = copy.deepcopy(body)
    meta = _dict(live, "metadata")
    meta.setdefault("namespace", "default")
    meta.update({
        "uid": "8cfec9a9-d736-4c10-8d91-bd3cafb69cb3", "resourceVersion": "10971",
        "generation": 2, "creationTimestamp": "2024-05-01T10:00:00Z",
        "selfLink": "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/x",
        "finalizers": ["kubevirt.io/virtualMachineControllerFinalize"],
        "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
    })
    _dict(meta, "annotations").update({
        "kubevirt.io/latest-observed-api-version": "v1",
        "kubevirt.io/storage-observed-api-version": "v1",
    })
    spec = live["spec"]
    if "runStrategy" in spec:  # the older spelling, as some clusters still report it
        strategy = spec.pop("runStrategy")
        if strategy in ("Always", "Halted"):
            spec["running"] = strategy == "Always"
        else:
            spec["runStrategy"] = strategy
    template = _dict(spec, "template")
    _dict(template, "metadata")["creationTimestamp"] = None
    tspec = _dict(template, "spec")
    tspec.setdefault("architecture", "amd64")
    domain = _dict(tspec, "domain")
    _dict(domain, "machine").setdefault("type", "q35")
    firmware = _dict(domain, "firmware")
    firmware.setdefault("uuid", "5d307ca9-b3ef-428c-8861-06e72d69f223")
    firmware.setdefault("serial", "e4686d2c-6e8d-4335-b8fd-81bee22f4814")
    for i, iface in enumerate(domain.get("devices", {}).get("interfaces", [])):
        iface.setdefault("macAddress", f"52:54:00:00:00:{i:02x}")
    memory = domain.get("memory", {})
    if memory.get("guest") == "128Mi":
        memory["guest"] = "0.125Gi"  # same value, other spelling
    live["status"] = {"created": True, "ready": True, "printableStatus": "Running",
                      "conditions": [{"type": "Ready", "status": "True"}]}
    return live


@pytest.mark.parametrize(("name", "vm"), VMS, ids=[n for n, _ in VMS])
def test_server_filled_live_vm_plans_nothing(name: str, vm: Manifest) -> None:
    live_body = server_filled(dict(vm.body))
    live = Manifest(vm.api_version, vm.kind, vm.namespace, vm.name, live_body, vm.source)
    plan = make_plan([vm], [Observed(live)], fingerprints=FP, profile=LIBVIRT)
    assert plan.empty, [(f.path, f.before, f.after) for c in plan.changes for f in c.fields]
    firmware = ((vm.body["spec"].get("template") or {}).get("spec", {}).get("domain", {})
                .get("firmware") or {})
    expected = {what for key, what in (("uuid", "firmware UUID"), ("serial", "firmware serial"))
                if key not in firmware}
    assert expected <= {u.what for u in plan.unpinned}


def test_argocd_live_vm_matches_its_spec() -> None:
    """Argo CD's health-check data is a real cluster's VM: strip it to what git would say
    and the plan is empty."""
    path = REFERENCE / "argocd-kubevirt-health/kubevirt.io/VirtualMachine/testdata/healthy_ready.yaml"
    if not path.exists():
        pytest.skip("reference data not available")
    live = load_bytes(path.read_bytes(), "live.yaml").manifests[0]
    body = copy.deepcopy(dict(live.body))
    body.pop("status")
    for k in ("resourceVersion", "selfLink", "uid", "annotations"):
        body["metadata"].pop(k)
    body["spec"]["runStrategy"] = "Always"
    del body["spec"]["running"]
    del body["spec"]["template"]["spec"]["domain"]["machine"]
    body["spec"]["template"]["spec"]["domain"]["resources"]["requests"]["memory"] = "64000k"
    git = Manifest(live.api_version, live.kind, live.namespace, live.name, body, live.source)
    plan = make_plan([git], [Observed(live)], fingerprints=FP, profile=LIBVIRT)
    assert plan.empty
