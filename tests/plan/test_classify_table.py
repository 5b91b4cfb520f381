"""One test per row of the classification table, plus a check that every row is covered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from plan_helpers import P, profile

from reconciler.classify import Context, Disruption, Rule, classify, compile_pattern, matches
from reconciler.diff import MISSING, FieldDiff
from reconciler.normalize import normalize

TPL = "spec.template.spec"
DEV = f"{TPL}.domain.devices"


def vm_body(volumes: list[dict[str, Any]] | None = None, max_guest: str | None = None,
            ) -> dict[str, Any]:
    memory: dict[str, Any] = {"guest": "1Gi"}
    if max_guest:
        memory["maxGuest"] = max_guest
    return normalize("VirtualMachine", {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": "a"},
        "spec": {"runStrategy": "Always", "template": {"spec": {
            "domain": {"memory": memory, "devices": {}},
            "volumes": volumes or []}}},
    })


HOT = [{"name": "data", "dataVolume": {"name": "data-dv", "hotpluggable": True}}]
PVC = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
EMPTY = vm_body()
CIDATA = {"name": "ci", "cloudInitNoCloud": {"userData": "#cloud-config"}}


@dataclass(frozen=True)
class Case:
    reason: str  # of the row expected to decide
    path: str
    before: Any
    after: Any
    kind: str = "VirtualMachine"
    ctx_before: Any = None
    ctx_after: Any = None
    backend: str = "libvirt"


A, M = "a", MISSING
CASES = [
    Case("firmware UUID is guest identity", f"{TPL}.domain.firmware.uuid", "u1", "u2"),
    Case("SMBIOS serial is guest identity", f"{TPL}.domain.firmware.serial", "s1", "s2"),
    Case("MAC address is guest identity", f"{DEV}.interfaces[name=default].macAddress",
         "52:54:00:00:00:01", "52:54:00:00:00:02"),
    Case("disk serial is guest identity", f"{DEV}.disks[name=root].serial", "d1", "d2"),
    Case("moves to another node without live migration", "(node)", "n1", "n2"),
    Case("renamed: the domain is defined again under the new name", "metadata.name", "a", "b"),
    Case("moved to another namespace", "metadata.namespace", "a", "b"),
    Case("placement changed: the domain moves to another node",
         f"{TPL}.nodeSelector.zone", "a", "b"),
    Case("placement changed: the domain moves to another node",
         f"{TPL}.affinity.nodeAffinity", {"x": 1}, {"x": 2}),
    Case("metadata only", 'metadata.labels["app.kubernetes.io/name"]', "a", "b"),
    Case("API version spelling only", "apiVersion", "kubevirt.io/v1alpha3", "kubevirt.io/v1"),
    Case("run strategy: started or stopped, not redefined", "spec.runStrategy", "Halted",
         "Always"),
    Case("template labels and annotations", "spec.template.metadata.labels.tier", "a", "b"),
    Case("owned DataVolume deleted with its data", "spec.dataVolumeTemplates[name=d]", {}, M),
    Case("new owned DataVolume", "spec.dataVolumeTemplates[name=d]", M, {}),
    Case("new DataVolume source: the disk is re-imported",
         "spec.dataVolumeTemplates[name=d].spec.source.http.url", "http://a", "http://b"),
    Case("new DataVolume source: the disk is re-imported",
         "spec.dataVolumeTemplates[name=d].spec.sourceRef.name", "a", "b"),
    Case("disk shrunk", "spec.dataVolumeTemplates[name=d].spec.pvc.resources.requests.storage",
         "10Gi", "5Gi"),
    Case("disk grown (online expansion)",
         "spec.dataVolumeTemplates[name=d].spec.storage.resources.requests.storage",
         "10Gi", "20Gi"),
    Case("DataVolume spec is immutable: deleted and created again",
         "spec.dataVolumeTemplates[name=d].spec.pvc.storageClassName", "a", "b"),
    Case("disk file missing on the node: its data is gone; restore the file first to keep it",
         f"{TPL}.volumes[name=data](file)", "missing: /s/claims/data.qcow2",
         "created again, blank", ctx_before=vm_body(PVC), ctx_after=vm_body(PVC)),
    Case("generated file missing on the node: written again",
         f"{TPL}.volumes[name=ci](file)", "missing: /s/vms/a/cidata-ci.iso", "written again",
         ctx_before=vm_body([CIDATA]), ctx_after=vm_body([CIDATA])),
    Case("hot-unplugged volume", f"{TPL}.volumes[name=data]", HOT[0], M,
         ctx_before=vm_body(HOT), ctx_after=EMPTY),
    Case("volume holding data removed", f"{TPL}.volumes[name=data]", PVC[0], M,
         ctx_before=vm_body(PVC), ctx_after=EMPTY),
    Case("emptyDisk recreated: its contents are lost",
         f"{TPL}.volumes[name=scratch].emptyDisk.capacity", "1Gi", "2Gi"),
    Case("hotplugged volume", f"{TPL}.volumes[name=data]", M, HOT[0],
         ctx_before=EMPTY, ctx_after=vm_body(HOT)),
    Case("hotplugged disk", f"{DEV}.disks[name=data]", M, {"disk": {"bus": "scsi"}},
         ctx_before=EMPTY, ctx_after=vm_body(HOT)),
    Case("memory hotplug within maxGuest", f"{TPL}.domain.memory.guest", "1Gi", "2Gi",
         ctx_before=vm_body(max_guest="4Gi"), ctx_after=vm_body(max_guest="4Gi")),
    Case("CPU topology or model", f"{TPL}.domain.cpu.cores", 1, 2),
    Case("guest memory", f"{TPL}.domain.memory.guest", "1Gi", "2Gi"),
    Case("resource requests and limits", f"{TPL}.domain.resources.requests.memory", "1Gi",
         "2Gi"),
    Case("machine type", f"{TPL}.domain.machine.type", "q35", "pc-q35-8.2"),
    Case("firmware", f"{TPL}.domain.firmware.bootloader", {"bios": {}}, {"efi": {}}),
    Case("NIC model", f"{DEV}.interfaces[name=default].model", "virtio", "e1000"),
    Case("boot order", f"{DEV}.disks[name=root].bootOrder", 1, 2),
    Case("disk order (boot order and device names)", f"{DEV}.disks(order)", ["a", "b"],
         ["b", "a"]),
    Case("NIC order (guest interface names)", f"{DEV}.interfaces(order)", ["a", "b"],
         ["b", "a"]),
    Case("disk not hotpluggable", f"{DEV}.disks[name=data]", M, {"disk": {}},
         ctx_before=EMPTY, ctx_after=vm_body(PVC)),
    Case("device change", f"{DEV}.autoattachSerialConsole", True, False),
    Case("placement: takes effect when rescheduled", f"{TPL}.nodeSelector.zone", "a", "b",
         backend="kubevirt"),
    Case("placement: takes effect when rescheduled", f"{TPL}.affinity.x", 1, 2,
         backend="kubevirt"),
    Case("used at the next stop", f"{TPL}.terminationGracePeriodSeconds", 0, 30),
    Case("policy only", f"{TPL}.evictionStrategy", "None", "LiveMigrate"),
    Case("instancetype changed", "spec.instancetype.name", "u1.small", "u1.large"),
    Case("preference changed", "spec.preference.name", "fedora", "rhel"),
    Case("guest definition", f"{TPL}.hostname", "a", "b"),
    Case("new DataVolume source: the disk is re-imported", "spec.source.http.url", "a", "b",
         kind="DataVolume"),
    Case("new DataVolume source: the disk is re-imported", "spec.sourceRef.name", "a", "b",
         kind="DataVolume"),
    Case("disk shrunk", "spec.storage.resources.requests.storage", "2Gi", "1Gi",
         kind="DataVolume"),
    Case("disk grown (online expansion)", "spec.pvc.resources.requests.storage", "1Gi",
         "1.5Gi", kind="DataVolume"),
    Case("DataVolume spec is immutable: deleted and created again", "spec.contentType",
         "kubevirt", "archive", kind="DataVolume"),
    Case("running VMs keep their revision until they restart", "spec.cpu.guest", 1, 2,
         kind="VirtualMachineClusterInstancetype", backend="kubevirt"),
    Case("the VMs using it follow (listed with a new revisionName)", "spec.cpu.guest", 1, 2,
         kind="VirtualMachineClusterInstancetype"),
    Case("virtsync configuration", "spec.nodes[name=n1].uri", "a", "b", kind="Cluster"),
    Case("unclassified field: assumed to need a restart", "spec.somethingNew", 1, 2),
]


def _row(case: Case) -> int:
    diff = FieldDiff(P(case.path), case.before, case.after)
    ctx = Context(case.kind, case.ctx_before or EMPTY, case.ctx_after or EMPTY)
    return classify(diff, ctx, profile(case.backend)).rule


def _rule(case: Case) -> Rule:
    return profile(case.backend).rules[_row(case)]


BACKENDS = ("libvirt", "kubevirt")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.kind}:{c.path}:{c.backend}")
def test_row_decides(case: Case) -> None:
    row = _rule(case)
    assert row.reason == case.reason
    assert matches(row.pattern, P(case.path))


def test_every_row_has_a_case() -> None:
    """Every row, common or a backend's own, decides some case: no row is dead."""
    covered = {_rule(c) for c in CASES}
    rows = dict.fromkeys(r for b in BACKENDS for r in profile(b).rules)
    missing = [f"{r.pattern} ({r.reason})" for r in rows if r not in covered]
    assert not missing


def test_identity_rows_are_flagged_and_restart() -> None:
    identity = [r for r in profile().rules if r.identity]
    assert {r.pattern.rsplit(".", 1)[-1] for r in identity} == {"uuid", "serial", "macAddress"}
    assert all(r.disruption == Disruption.RESTART for r in identity)


def test_shrink_is_data_loss_but_grow_is_live() -> None:
    path = "spec.dataVolumeTemplates[name=d].spec.pvc.resources.requests.storage"
    shrink = _rule(Case("", path, "10Gi", "9Gi"))
    grow = _rule(Case("", path, "10Gi", "10240Mi"))  # equal value: not a grow
    assert shrink.disruption == Disruption.DATA_LOSS
    assert grow.disruption == Disruption.DATA_LOSS  # no condition held: immutable spec row
    assert _rule(Case("", path, "10Gi", "11Gi")).disruption == Disruption.LIVE


def test_memory_beyond_max_guest_needs_restart() -> None:
    ctx = vm_body(max_guest="2Gi")
    case = Case("", f"{TPL}.domain.memory.guest", "1Gi", "4Gi", ctx_before=ctx, ctx_after=ctx)
    assert _rule(case).disruption == Disruption.RESTART


def test_patterns_parse() -> None:
    assert compile_pattern('metadata.annotations["virtsync.io/wave"]') == (
        ("key", "metadata"), ("key", "annotations"), ("key", "virtsync.io/wave"))
    assert matches("a.**", P("a")) and matches("a.**", P("a.b[name=x].c"))
    assert not matches("a.*", P("a[name=x]"))
    assert matches("a[*].b", P("a[3].b"))
