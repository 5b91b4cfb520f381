"""One test per row of the classification table, plus a check that every row is covered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from plan_helpers import P, profile

from reconciler.backends.kubevirt.rules import RULES as KUBEVIRT_RULES
from reconciler.planning.classify import (
    Context,
    Disruption,
    Rule,
    Verdict,
    classify,
    compile_pattern,
    matches,
)
from reconciler.planning.diff import MISSING, FieldDiff
from reconciler.planning.normalize import normalize

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


N, L, R, X, D = (Disruption.NONE, Disruption.LIVE, Disruption.RESTART, Disruption.REPLACE,
                 Disruption.DATA_LOSS)


@dataclass(frozen=True)
class Case:
    """Expected class (stated here, not read from RULES), identity flag and deciding row."""

    disruption: Disruption
    reason: str  # of the row expected to decide
    path: str
    before: Any
    after: Any
    kind: str = "VirtualMachine"
    ctx_before: Any = None
    ctx_after: Any = None
    backend: str = "libvirt"
    identity: bool = False  # flagged as a guest-identity change


A, M = "a", MISSING
CASES = [
    Case(R, "firmware UUID is guest identity", f"{TPL}.domain.firmware.uuid", "u1", "u2",
         identity=True),
    Case(R, "SMBIOS serial is guest identity", f"{TPL}.domain.firmware.serial", "s1", "s2",
         identity=True),
    Case(R, "MAC address is guest identity", f"{DEV}.interfaces[name=default].macAddress",
         "52:54:00:00:00:01", "52:54:00:00:00:02", identity=True),
    Case(R, "disk serial is guest identity", f"{DEV}.disks[name=root].serial", "d1", "d2",
         identity=True),
    Case(X, "moves to another node without live migration", "(node)", "n1", "n2"),
    Case(X, "renamed: the domain is defined again under the new name", "metadata.name", "a", "b"),
    Case(X, "moved to another namespace", "metadata.namespace", "a", "b"),
    Case(L, "placement: moves the VM only when its node no longer satisfies it (live migration when it can)",
         f"{TPL}.nodeSelector.zone", "a", "b"),
    Case(L, "placement: moves the VM only when its node no longer satisfies it (live migration when it can)",
         f"{TPL}.affinity.nodeAffinity", {"x": 1}, {"x": 2}),
    Case(N, "metadata only", 'metadata.labels["app.kubernetes.io/name"]', "a", "b"),
    Case(N, "API version spelling only", "apiVersion", "kubevirt.io/v1alpha3", "kubevirt.io/v1"),
    Case(L, "run strategy: started or stopped, not redefined", "spec.runStrategy", "Halted",
         "Always"),
    Case(N, "template labels and annotations", "spec.template.metadata.labels.tier", "a", "b"),
    Case(D, "owned DataVolume deleted with its data", "spec.dataVolumeTemplates[name=d]", {}, M),
    # the whole list removed is one field change of its own (found by the gate tests)
    Case(D, "owned DataVolume deleted with its data", "spec.dataVolumeTemplates",
         normalize("VirtualMachine", {"spec": {"dataVolumeTemplates": [
             {"metadata": {"name": "d"}, "spec": {}}]}})["spec"]["dataVolumeTemplates"], M),
    Case(L, "new owned DataVolume", "spec.dataVolumeTemplates[name=d]", M, {}),
    Case(D, "new DataVolume source: the disk is re-imported",
         "spec.dataVolumeTemplates[name=d].spec.source.http.url", "http://a", "http://b"),
    Case(D, "new DataVolume source: the disk is re-imported",
         "spec.dataVolumeTemplates[name=d].spec.sourceRef.name", "a", "b"),
    Case(D, "disk shrunk", "spec.dataVolumeTemplates[name=d].spec.pvc.resources.requests.storage",
         "10Gi", "5Gi"),
    Case(L, "disk grown (online expansion)",
         "spec.dataVolumeTemplates[name=d].spec.storage.resources.requests.storage",
         "10Gi", "20Gi"),
    Case(D, "DataVolume spec is immutable: deleted and created again",
         "spec.dataVolumeTemplates[name=d].spec.pvc.storageClassName", "a", "b"),
    Case(D, "disk file missing on the node: its data is gone; restore the file first to keep it",
         f"{TPL}.volumes[name=data](file)", "missing: /s/claims/data.qcow2",
         "created again, blank", ctx_before=vm_body(PVC), ctx_after=vm_body(PVC)),
    Case(L, "generated file missing on the node: written again",
         f"{TPL}.volumes[name=ci](file)", "missing: /s/vms/a/cidata-ci.iso", "written again",
         ctx_before=vm_body([CIDATA]), ctx_after=vm_body([CIDATA])),
    Case(L, "hot-unplugged volume", f"{TPL}.volumes[name=data]", HOT[0], M,
         ctx_before=vm_body(HOT), ctx_after=EMPTY),
    Case(D, "volume holding data removed", f"{TPL}.volumes[name=data]", PVC[0], M,
         ctx_before=vm_body(PVC), ctx_after=EMPTY),
    Case(D, "volume holding data removed", f"{TPL}.volumes", vm_body(PVC)["spec"]["template"]
         ["spec"]["volumes"], M, ctx_before=vm_body(PVC), ctx_after=EMPTY),
    Case(D, "emptyDisk recreated: its contents are lost",
         f"{TPL}.volumes[name=scratch].emptyDisk.capacity", "1Gi", "2Gi"),
    Case(L, "hotplugged volume", f"{TPL}.volumes[name=data]", M, HOT[0],
         ctx_before=EMPTY, ctx_after=vm_body(HOT)),
    Case(L, "hotplugged disk", f"{DEV}.disks[name=data]", M, {"disk": {"bus": "scsi"}},
         ctx_before=EMPTY, ctx_after=vm_body(HOT)),
    Case(L, "memory hotplug within maxGuest", f"{TPL}.domain.memory.guest", "1Gi", "2Gi",
         ctx_before=vm_body(max_guest="4Gi"), ctx_after=vm_body(max_guest="4Gi")),
    Case(R, "CPU topology or model", f"{TPL}.domain.cpu.cores", 1, 2),
    Case(R, "guest memory", f"{TPL}.domain.memory.guest", "1Gi", "2Gi"),
    Case(R, "resource requests and limits", f"{TPL}.domain.resources.requests.memory", "1Gi",
         "2Gi"),
    Case(R, "machine type", f"{TPL}.domain.machine.type", "q35", "pc-q35-8.2"),
    Case(R, "firmware", f"{TPL}.domain.firmware.bootloader", {"bios": {}}, {"efi": {}}),
    Case(R, "NIC model", f"{DEV}.interfaces[name=default].model", "virtio", "e1000"),
    Case(R, "boot order", f"{DEV}.disks[name=root].bootOrder", 1, 2),
    Case(R, "disk order (boot order and device names)", f"{DEV}.disks(order)", ["a", "b"],
         ["b", "a"]),
    Case(R, "NIC order (guest interface names)", f"{DEV}.interfaces(order)", ["a", "b"],
         ["b", "a"]),
    Case(R, "disk not hotpluggable", f"{DEV}.disks[name=data]", M, {"disk": {}},
         ctx_before=EMPTY, ctx_after=vm_body(PVC)),
    Case(R, "device change", f"{DEV}.autoattachSerialConsole", True, False),
    Case(R, "placement: takes effect when rescheduled", f"{TPL}.nodeSelector.zone", "a", "b",
         backend="kubevirt:Stage"),
    Case(R, "placement: takes effect when rescheduled", f"{TPL}.affinity.x", 1, 2,
         backend="kubevirt:Stage"),
    Case(N, "used at the next stop", f"{TPL}.terminationGracePeriodSeconds", 0, 30),
    Case(N, "policy only", f"{TPL}.evictionStrategy", "None", "LiveMigrate"),
    Case(R, "instancetype changed", "spec.instancetype.name", "u1.small", "u1.large"),
    Case(R, "preference changed", "spec.preference.name", "fedora", "rhel"),
    Case(R, "guest definition", f"{TPL}.hostname", "a", "b"),
    Case(D, "new DataVolume source: the disk is re-imported", "spec.source.http.url", "a", "b",
         kind="DataVolume"),
    Case(D, "new DataVolume source: the disk is re-imported", "spec.sourceRef.name", "a", "b",
         kind="DataVolume"),
    Case(D, "disk shrunk", "spec.storage.resources.requests.storage", "2Gi", "1Gi",
         kind="DataVolume"),
    Case(L, "disk grown (online expansion)", "spec.pvc.resources.requests.storage", "1Gi",
         "1.5Gi", kind="DataVolume"),
    Case(D, "DataVolume spec is immutable: deleted and created again", "spec.contentType",
         "kubevirt", "archive", kind="DataVolume"),
    Case(N, "running VMs keep their revision until they restart", "spec.cpu.guest", 1, 2,
         kind="VirtualMachineClusterInstancetype", backend="kubevirt"),
    Case(N, "the VMs using it follow (listed with a new revisionName)", "spec.cpu.guest", 1, 2,
         kind="VirtualMachineClusterInstancetype"),
    Case(N, "virtsync configuration", "spec.nodes[name=n1].uri", "a", "b", kind="Cluster"),
    Case(R, "unclassified field: assumed to need a restart", "spec.somethingNew", 1, 2),
]


# Second cases for rows whose condition or kinds have more than one branch: each kills
# a mutant that the first case alone lets through (tools/mutate.py).
DV_KIND, CIT = "DataVolume", "VirtualMachineClusterInstancetype"
HOT_PVC = [{"name": "data", "persistentVolumeClaim": {"claimName": "d", "hotpluggable": True}}]
HOST = [{"name": "data", "hostDisk": {"path": "/d.img", "type": "Disk"}}]
CONTAINER = [{"name": "data", "containerDisk": {"image": "x"}}]
DVOL = [{"name": "data", "dataVolume": {"name": "data-dv"}}]
SCRATCH = [{"name": "data", "emptyDisk": {"capacity": "1Gi"}}]
MORE_CASES = [
    Case(X, "moves to another node without live migration", "(node)", "n1", "n2",
         kind=DV_KIND),
    Case(X, "renamed: the domain is defined again under the new name", "metadata.name", "a",
         "b", kind=DV_KIND),
    Case(X, "moved to another namespace", "metadata.namespace", "a", "b", kind=DV_KIND),
    Case(N, "metadata only", "metadata.labels.app", "a", "b", kind=DV_KIND),
    Case(N, "metadata only", "metadata.labels.app", "a", "b", kind=CIT),
    Case(N, "API version spelling only", "apiVersion", "cdi.kubevirt.io/v1alpha1",
         "cdi.kubevirt.io/v1beta1", kind=DV_KIND),
    Case(N, "API version spelling only", "apiVersion", "instancetype.kubevirt.io/v1alpha1",
         "instancetype.kubevirt.io/v1beta1", kind=CIT),
    # hotplug: a PVC too; a disk whose volume does not exist is not hotpluggable
    Case(L, "hot-unplugged volume", f"{TPL}.volumes[name=data]", HOT_PVC[0], M,
         ctx_before=vm_body(HOT_PVC), ctx_after=EMPTY),
    Case(R, "disk not hotpluggable", f"{DEV}.disks[name=data]", M, {"disk": {}}),
    Case(R, "disk not hotpluggable", f"{DEV}.disks[0]", M, {"disk": {}},
         ctx_after=vm_body(HOT)),
    # what holds data: every source that does, and one that does not
    Case(D, "volume holding data removed", f"{TPL}.volumes[name=data]", HOST[0], M,
         ctx_before=vm_body(HOST)),
    Case(D, "volume holding data removed", f"{TPL}.volumes[name=data]", DVOL[0], M,
         ctx_before=vm_body(DVOL)),
    Case(D, "volume holding data removed", f"{TPL}.volumes[name=data]", SCRATCH[0], M,
         ctx_before=vm_body(SCRATCH)),
    Case(R, "guest definition", f"{TPL}.volumes[name=data]", CONTAINER[0], M,
         ctx_before=vm_body(CONTAINER)),
    Case(R, "guest definition", f"{TPL}.volumes", vm_body(CONTAINER)["spec"]["template"]
         ["spec"]["volumes"], M, ctx_before=vm_body(CONTAINER)),
    # quantities: an added request is neither a shrink nor a grow
    Case(D, "DataVolume spec is immutable: deleted and created again",
         "spec.dataVolumeTemplates[name=d].spec.pvc.resources.requests.storage", M, "1Gi"),
    Case(D, "DataVolume spec is immutable: deleted and created again",
         "spec.dataVolumeTemplates[name=d].spec.pvc.resources.requests.storage", "1Gi", M),
    # memory: up to exactly maxGuest is live; down, or with maxGuest changed, a restart
    Case(L, "memory hotplug within maxGuest", f"{TPL}.domain.memory.guest", "1Gi", "4Gi",
         ctx_before=vm_body(max_guest="4Gi"), ctx_after=vm_body(max_guest="4Gi")),
    Case(R, "guest memory", f"{TPL}.domain.memory.guest", "2Gi", "1Gi",
         ctx_before=vm_body(max_guest="4Gi"), ctx_after=vm_body(max_guest="4Gi")),
    Case(R, "guest memory", f"{TPL}.domain.memory.guest", "1Gi", "2Gi",
         ctx_before=vm_body(max_guest="2Gi"), ctx_after=vm_body(max_guest="4Gi")),
    Case(R, "guest memory", f"{TPL}.domain.memory.guest", "1Gi", "2Gi",
         ctx_before=vm_body(max_guest="4Gi"), ctx_after=vm_body()),
]


def _verdict(case: Case) -> Verdict:
    diff = FieldDiff(P(case.path), case.before, case.after)
    ctx = Context(case.kind, case.ctx_before or EMPTY, case.ctx_after or EMPTY)
    return classify(diff, ctx, profile(case.backend))


def _rule(case: Case) -> Rule:
    return profile(case.backend).rules[_row(case)]


BACKENDS = ("libvirt", "kubevirt", "kubevirt:Stage")
# KubeVirt's own live-update rows have their table in tests/plan/test_classify_kubevirt.py.
KUBEVIRT_OWN = {r for rows in KUBEVIRT_RULES.values() for r in rows}


def _row(case: Case) -> int:
    return _verdict(case).rule


@pytest.mark.parametrize("case", CASES + MORE_CASES,
                         ids=lambda c: f"{c.kind}:{c.path}:{c.backend}")
def test_row_decides(case: Case) -> None:
    verdict = _verdict(case)
    row = profile(case.backend).rules[verdict.rule]
    assert row.reason == case.reason
    assert matches(row.pattern, P(case.path))
    # The promise users rely on is the class (what the gate asks for) and the identity
    # flag, both stated in CASES independently of RULES.
    assert (verdict.disruption.label, verdict.identity) == \
        (case.disruption.label, case.identity), case.reason


def test_every_row_has_a_case() -> None:
    """Every row, common or a backend's own, decides some case: no row is dead."""
    covered = {_rule(c) for c in CASES}
    rows = dict.fromkeys(r for b in BACKENDS for r in profile(b).rules if r not in KUBEVIRT_OWN)
    missing = [f"{r.pattern} ({r.reason})" for r in rows if r not in covered]
    assert not missing


def test_identity_rows_are_flagged_and_restart() -> None:
    identity = [r for r in profile().rules if r.identity]
    assert {r.pattern.rsplit(".", 1)[-1] for r in identity} == {"uuid", "serial", "macAddress"}
    assert all(r.disruption == Disruption.RESTART for r in identity)


def test_shrink_is_data_loss_but_grow_is_live() -> None:
    path = "spec.dataVolumeTemplates[name=d].spec.pvc.resources.requests.storage"
    shrink = _rule(Case(N, "", path, "10Gi", "9Gi"))
    grow = _rule(Case(N, "", path, "10Gi", "10240Mi"))  # equal value: neither
    assert grow.reason == "DataVolume spec is immutable: deleted and created again"
    assert shrink.disruption == Disruption.DATA_LOSS
    assert grow.disruption == Disruption.DATA_LOSS  # no condition held: immutable spec row
    assert _rule(Case(N, "", path, "10Gi", "11Gi")).disruption == Disruption.LIVE


def test_removing_all_volumes_without_data_is_not_data_loss() -> None:
    cloud = [{"name": "ci", "cloudInitNoCloud": {"userData": "x"}}]
    volumes = vm_body(cloud)["spec"]["template"]["spec"]["volumes"]
    case = Case(R, "", f"{TPL}.volumes", volumes, M, ctx_before=vm_body(cloud))
    assert _verdict(case).disruption == Disruption.RESTART


def test_memory_beyond_max_guest_needs_restart() -> None:
    ctx = vm_body(max_guest="2Gi")
    case = Case(N, "", f"{TPL}.domain.memory.guest", "1Gi", "4Gi", ctx_before=ctx, ctx_after=ctx)
    assert _rule(case).disruption == Disruption.RESTART


def test_patterns_parse() -> None:
    assert compile_pattern('metadata.annotations["virtsync.io/wave"]') == (
        ("key", "metadata"), ("key", "annotations"), ("key", "virtsync.io/wave"))
    assert matches("a.**", P("a")) and matches("a.**", P("a.b[name=x].c"))
    assert not matches("a.*", P("a[name=x]"))
    assert matches("a[*].b", P("a[3].b"))
