"""Migratability (reconciler.planning.migratable): one row per rule, each citing the
KubeVirt behaviour it mirrors (pkg/virt-handler/vm.go unless said otherwise), with a
second, differently shaped case where a mutant of the first would pass."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from reconciler.core.migration import MigrationMethod, MigrationPolicy, NotMigratable
from reconciler.core.vmspec import VmSpec
from reconciler.planning.migratable import migratability
from reconciler.planning.schedule import NodeCapacity

SHARED_A = NodeCapacity("a", shared_storage="/srv/shared", cpu_model="Skylake")
SHARED_B = NodeCapacity("b", shared_storage="/srv/shared", cpu_model="Skylake")
LOCAL_A = NodeCapacity("a", cpu_model="Skylake")
LOCAL_B = NodeCapacity("b", cpu_model="Skylake")
OTHER_CPU = NodeCapacity("b", shared_storage="/srv/shared", cpu_model="EPYC")
UNKNOWN_CPU = NodeCapacity("b", shared_storage="/srv/shared")
BLOCK = MigrationPolicy(allow_block_migration=True)
DEFAULT_POLICY = MigrationPolicy()
Edit = Callable[[dict[str, Any]], None]

BASE: dict[str, Any] = {
    "spec": {"runStrategy": "Always", "template": {"spec": {
        "domain": {"memory": {"guest": "64Mi"}, "devices": {
            "disks": [{"name": "root", "disk": {}}],
            "interfaces": [{"name": "default", "masquerade": {}}]}},
        "networks": [{"name": "default", "pod": {}}],
        "volumes": [{"name": "root", "persistentVolumeClaim": {"claimName": "root"}}],
    }}},
}


def tmpl(body: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = body["spec"]["template"]["spec"]
    return spec


def devices(body: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = tmpl(body)["domain"]["devices"]
    return found


def set_volume(kind: str, source: dict[str, Any], device: str = "disk") -> Edit:
    def edit(body: dict[str, Any]) -> None:
        tmpl(body)["volumes"] = [{"name": "root", kind: source}]
        devices(body)["disks"] = [{"name": "root", device: {}}]
    return edit


def bridge_on(network: dict[str, Any]) -> Edit:
    def edit(body: dict[str, Any]) -> None:
        devices(body)["interfaces"] = [{"name": "default", "bridge": {}}]
        tmpl(body)["networks"] = [{"name": "default", **network}]
    return edit


def cpu(model: str) -> Edit:
    def edit(body: dict[str, Any]) -> None:
        tmpl(body)["domain"]["cpu"] = {"model": model}
    return edit


def device(key: str, value: Any) -> Edit:
    def edit(body: dict[str, Any]) -> None:
        devices(body)[key] = value
    return edit


def domain(key: str, value: Any) -> Edit:
    def edit(body: dict[str, Any]) -> None:
        tmpl(body)["domain"][key] = value
    return edit


def both(*edits: Edit) -> Edit:
    def edit(body: dict[str, Any]) -> None:
        for e in edits:
            e(body)
    return edit


@dataclass(frozen=True)
class Row:
    id: str
    kubevirt: str  # the KubeVirt behaviour mirrored (or where virtsync departs from it)
    edit: Edit
    reasons: tuple[NotMigratable, ...]
    source: NodeCapacity = SHARED_A
    target: NodeCapacity = SHARED_B
    policy: MigrationPolicy = DEFAULT_POLICY
    method: MigrationMethod = MigrationMethod.LIVE
    says: str = ""  # a word the message must carry


ROWS = (
    Row("shared-claim", "checkVolumesForMigration: an RWX (shared) PVC migrates, memory only",
        lambda b: None, ()),
    Row("shared-datavolume", "checkVolumesForMigration: a DataVolume is a PVC, same rule",
        set_volume("dataVolume", {"name": "root"}), ()),
    Row("local-claim", "checkVolumesForMigration: 'PVC ... is not shared, live migration "
        "requires that all PVCs must be shared' -> DisksNotLiveMigratable",
        lambda b: None, (NotMigratable.DISKS,), LOCAL_A, LOCAL_B),
    Row("local-claim-other-dirs", "same rule: both nodes shared, but different storage",
        lambda b: None, (NotMigratable.DISKS,), SHARED_A,
        NodeCapacity("b", shared_storage="/srv/other", cpu_model="Skylake")),
    Row("local-claim-block", "virtsync beyond KubeVirt: allowBlockMigration copies a "
        "node-local claim (KubeVirt's BlockMigration method)",
        lambda b: None, (), LOCAL_A, LOCAL_B, BLOCK, MigrationMethod.BLOCK),
    Row("local-datavolume-block", "same, for a DataVolume",
        set_volume("dataVolume", {"name": "root"}), (), LOCAL_A, LOCAL_B, BLOCK,
        MigrationMethod.BLOCK),
    Row("local-containerdisk", "checkVolumesForMigration: a non-PVC, non-hostDisk volume "
        "sets blockMigrate, still migratable (no policy needed)",
        set_volume("containerDisk", {"image": "img"}), (), LOCAL_A, LOCAL_B,
        method=MigrationMethod.BLOCK),
    Row("local-emptydisk", "same rule for emptyDisk",
        set_volume("emptyDisk", {"capacity": "1Gi"}), (), LOCAL_A, LOCAL_B,
        method=MigrationMethod.BLOCK),
    Row("shared-containerdisk", "shared storage: nothing to copy",
        set_volume("containerDisk", {"image": "img"}), ()),
    Row("readonly-cdrom", "isReadOnlyDisk: a read-only CD-ROM is skipped (no block copy)",
        set_volume("containerDisk", {"image": "img"}, device="cdrom"), (), LOCAL_A, LOCAL_B),
    Row("hostdisk", "checkVolumesForMigration: 'cannot migrate VMI with non-shared HostDisk'",
        set_volume("hostDisk", {"path": "/srv/hd/x.img", "type": "Disk"}),
        (NotMigratable.DISKS,)),
    Row("hostdisk-block-allowed", "same, even with block migration allowed (a host path is "
        "outside virtsync's storage: rule 14)",
        set_volume("hostDisk", {"path": "/srv/hd/x.img", "type": "Disk"}),
        (NotMigratable.DISKS,), LOCAL_A, LOCAL_B, BLOCK),
    Row("hostdisk-shared", "hostDisk.shared: true is migratable",
        set_volume("hostDisk", {"path": "/srv/hd/x.img", "type": "Disk", "shared": True}),
        (), LOCAL_A, LOCAL_B),
    Row("bridge-pod", "checkNetworkInterfacesForMigration: bridge binding on the pod network "
        "-> InterfaceNotLiveMigratable", bridge_on({"pod": {}}), (NotMigratable.INTERFACE,)),
    Row("bridge-multus", "a bridge binding on a multus network is migratable",
        bridge_on({"multus": {"networkName": "lan"}}), ()),
    Row("masquerade-pod", "masquerade on the pod network is migratable", lambda b: None, ()),
    Row("host-passthrough-same", "host-passthrough between identical CPUs migrates",
        cpu("host-passthrough"), ()),
    Row("host-passthrough-unlike", "host-passthrough across unlike hosts: CPUModeLiveMigratable",
        cpu("host-passthrough"), (NotMigratable.CPU_MODE,), target=OTHER_CPU,
        says="host-passthrough needs the same known host CPU"),
    Row("host-passthrough-unknown", "host-passthrough, target CPU unknown: refused",
        cpu("host-passthrough"), (NotMigratable.CPU_MODE,), target=UNKNOWN_CPU),
    Row("host-model-unlike", "isHostModelMigratable: the target must offer the host model",
        cpu("host-model"), (NotMigratable.CPU_MODE,), target=OTHER_CPU),
    Row("default-cpu-unlike", "an unset model is KubeVirt's default host-model",
        lambda b: None, (NotMigratable.CPU_MODE,), target=OTHER_CPU),
    Row("host-model-unknown", "host-model, target CPU unknown: libvirt checks it when migrating",
        cpu("host-model"), (), target=UNKNOWN_CPU),
    Row("named-model", "a named CPU model (custom, fallback forbid) migrates",
        cpu("Westmere"), (), target=OTHER_CPU),
    Row("host-devices", "vmiContainsPCIHostDevice: hostDevices -> HostDeviceNotLiveMigratable",
        device("hostDevices", [{"name": "nic", "deviceName": "vendor/nic"}]),
        (NotMigratable.HOST_DEVICE,)),
    Row("gpus", "vmiContainsPCIHostDevice: gpus count as host devices",
        device("gpus", [{"name": "gpu", "deviceName": "nvidia/gpu"}]),
        (NotMigratable.HOST_DEVICE,)),
    Row("sev", "IsSEVVMI -> SEVNotLiveMigratable", domain("launchSecurity", {"sev": {}}),
        (NotMigratable.SEV,)),
    Row("tdx", "IsTDXVMI -> TDXNotLiveMigratable", domain("launchSecurity", {"tdx": {}}),
        (NotMigratable.TDX,)),
    Row("persistent-reservation", "HasVMIPersistentReservation -> "
        "PersistentReservationNotLiveMigratable",
        both(set_volume("persistentVolumeClaim", {"claimName": "root"}, device="lun"),
             lambda b: devices(b)["disks"][0].update({"lun": {"reservation": True}})),
        (NotMigratable.PERSISTENT_RESERVATION,)),
    Row("hyperv-passthrough", "hypervPassthrough.enabled -> HypervPassthroughNotLiveMigratable",
        domain("features", {"hypervPassthrough": {"enabled": True}}),
        (NotMigratable.HYPERV_PASSTHROUGH,)),
    Row("order", "evaluateCommonMigrationConstraints first, volumes last; the first reason "
        "is the condition's",
        both(bridge_on({"pod": {}}), device("gpus", [{"name": "g", "deviceName": "x/g"}])),
        (NotMigratable.INTERFACE, NotMigratable.HOST_DEVICE, NotMigratable.DISKS),
        LOCAL_A, LOCAL_B),
)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_migratability_table(row: Row) -> None:
    body = copy.deepcopy(BASE)
    row.edit(body)
    vm = VmSpec.from_body("ns", "vm", body)
    got = migratability(vm, body, row.source, row.target, row.policy)
    assert got.reasons == row.reasons, (row.kubevirt, got.describe())
    assert got.migratable == (not row.reasons)
    if got.migratable:
        assert got.method is row.method, row.kubevirt
    else:
        assert got.reason == row.reasons[0]  # the condition's reason: the first one
        assert str(row.reasons[0]) in got.describe()
        assert row.says in got.describe()


def test_kubevirt_spelling_of_reasons() -> None:
    """staging/src/kubevirt.io/api/core/v1/types.go: the reasons as KubeVirt spells them
    (its CPU reason lacks the "Not")."""
    assert [r.value for r in NotMigratable][:4] == [
        "DisksNotLiveMigratable", "InterfaceNotLiveMigratable", "CPUModeLiveMigratable",
        "HostDeviceNotLiveMigratable"]
