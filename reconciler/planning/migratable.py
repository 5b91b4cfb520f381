"""Can this VM be live-migrated from one node to another? A pure function with KubeVirt's
`LiveMigratable` condition reasons, answered before merge (KubeVirt answers only once the
VMI runs).

The checks mirror KubeVirt's virt-handler (pkg/virt-handler/vm.go:
`calculateLiveMigrationCondition`, `checkVolumesForMigration`,
`checkNetworkInterfacesForMigration`, `isHostModelMigratable`, `vmiContainsPCIHostDevice`)
in its order: the VM-wide constraints first (interfaces, CPU mode, host devices, launch
security, SCSI persistent reservation, Hyper-V passthrough), then the disks; the first
reason is the condition's reason, and every reason is kept for the report.

Where virtsync differs (docs/migration.md):
- a claim (persistentVolumeClaim, dataVolume) on node-local storage is migratable by
  block migration (libvirt copies the disk while the guest runs) when the migration
  policy's `allowBlockMigration` is true; KubeVirt refuses any claim that is not RWX;
- "shared" is a Cluster fact: both nodes set `sharedStorage` on the same storageDir;
- the CPU check compares the nodes' configured `cpuModel`: host-passthrough needs both
  known and equal; host-model (KubeVirt's default, also an unset model) is refused only
  when both are known and differ (libvirt checks the target CPU again when migrating).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.core.migration import MigrationMethod, MigrationPolicy, NotMigratable
from reconciler.core.model import CLAIM_SOURCES, JSON
from reconciler.core.vmspec import VmSpec
from reconciler.planning.normalize import get_path
from reconciler.planning.schedule import NodeCapacity

TEMPLATE = ("spec", "template", "spec")
DEVICES = (*TEMPLATE, "domain", "devices")
HOST_PASSTHROUGH = "host-passthrough"
HOST_MODEL = "host-model"
# Volume kinds KubeVirt always block-migrates when not shared (ephemeral, VM-private).
EPHEMERAL = frozenset({"containerDisk", "emptyDisk", "cloudInitNoCloud"})


@dataclass(frozen=True)
class Blocker:
    reason: NotMigratable
    message: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


@dataclass(frozen=True)
class Migratability:
    """`blockers` empty: migratable, by `method` (memory only, or disks copied too)."""

    blockers: tuple[Blocker, ...] = ()
    method: MigrationMethod = MigrationMethod.LIVE

    @property
    def migratable(self) -> bool:
        return not self.blockers

    @property
    def reasons(self) -> tuple[NotMigratable, ...]:
        return tuple(b.reason for b in self.blockers)

    @property
    def reason(self) -> str:
        """The condition's reason: the first one, as KubeVirt reports it."""
        return self.blockers[0].reason if self.blockers else ""

    def describe(self) -> str:
        if self.migratable:
            return ("live-migratable, copying the node-local disks (block migration)"
                    if self.method is MigrationMethod.BLOCK
                    else "live-migratable, memory only (shared storage)")
        return "; ".join(str(b) for b in self.blockers)


def shares_storage(source: NodeCapacity | None, target: NodeCapacity | None) -> bool:
    """Both nodes see the same disk files (sharedStorage on the same storageDir)."""
    return (source is not None and target is not None and source.shared_storage is not None
            and source.shared_storage == target.shared_storage)


def _interfaces(vm: VmSpec) -> list[Blocker]:
    """KubeVirt: bridge binding on the pod network cannot migrate (the pod's IP is bound
    to the source node)."""
    return [Blocker(NotMigratable.INTERFACE,
                    f"interface {i.name} uses bridge binding on the pod network")
            for i in vm.interfaces
            if i.binding == "bridge" and (net := vm.network(i.name)) is not None
            and net.kind == "pod"]


def _cpu(vm: VmSpec, source: NodeCapacity | None, target: NodeCapacity | None) -> list[Blocker]:
    model = vm.cpu.model or HOST_MODEL  # KubeVirt's default CPU mode
    if model not in (HOST_MODEL, HOST_PASSTHROUGH):
        return []  # a named model: libvirt checks the target offers it
    have = source.cpu_model if source else None
    want = target.cpu_model if target else None
    if model == HOST_PASSTHROUGH and (have is None or want is None or have != want):
        where = target.name if target else "the target"
        return [Blocker(NotMigratable.CPU_MODE,
                        f"cpu.model host-passthrough needs the same known host CPU on "
                        f"both nodes (source {have or 'unknown'}, {where} {want or 'unknown'})")]
    if have is not None and want is not None and have != want:
        return [Blocker(NotMigratable.CPU_MODE,
                        f"host-model CPU of {source.name if source else '?'} ({have}) differs "
                        f"from {target.name if target else '?'} ({want})")]
    return []


def _devices(body: Mapping[str, JSON]) -> list[Blocker]:
    out: list[Blocker] = []
    if get_path(body, (*DEVICES, "hostDevices")) or get_path(body, (*DEVICES, "gpus")):
        out.append(Blocker(NotMigratable.HOST_DEVICE, "VMI uses a PCI host device or GPU"))
    security = get_path(body, (*TEMPLATE, "domain", "launchSecurity"))
    if isinstance(security, Mapping) and ("sev" in security or "snp" in security):
        out.append(Blocker(NotMigratable.SEV, "VMI uses SEV (launchSecurity)"))
    elif isinstance(security, Mapping) and "tdx" in security:
        out.append(Blocker(NotMigratable.TDX, "VMI uses TDX (launchSecurity)"))
    disks = get_path(body, (*DEVICES, "disks"))
    if any(get_path(d, ("lun", "reservation")) is True for d in disks or []
           if isinstance(d, Mapping)):
        out.append(Blocker(NotMigratable.PERSISTENT_RESERVATION,
                           "VMI uses SCSI persistent reservation"))
    if get_path(body, (*TEMPLATE, "domain", "features", "hypervPassthrough", "enabled")) is True:
        out.append(Blocker(NotMigratable.HYPERV_PASSTHROUGH, "VMI uses hyperv passthrough"))
    return out


def _host_disk_shared(body: Mapping[str, JSON], volume: str) -> bool:
    for raw in get_path(body, (*TEMPLATE, "volumes")) or []:
        if isinstance(raw, Mapping) and raw.get("name") == volume:
            return get_path(raw, ("hostDisk", "shared")) is True
    return False


def _volumes(vm: VmSpec, body: Mapping[str, JSON], shared: bool,
             policy: MigrationPolicy) -> tuple[list[Blocker], MigrationMethod]:
    """KubeVirt's checkVolumesForMigration, with virtsync's block migration of claims."""
    blockers: list[Blocker] = []
    method = MigrationMethod.LIVE
    for v in vm.volumes:
        disk = vm.disk(v.name)
        if disk is not None and disk.device == "cdrom" and disk.readonly:
            continue  # KubeVirt: a read-only CD-ROM is not a reason (isReadOnlyDisk)
        if v.kind == "hostDisk":
            if not _host_disk_shared(body, v.name):
                blockers.append(Blocker(NotMigratable.DISKS,
                                        f"cannot migrate VMI with non-shared HostDisk "
                                        f"({v.name}: set hostDisk.shared when the path is "
                                        "shared storage)"))
            continue
        if shared:
            continue
        if v.kind in CLAIM_SOURCES and not policy.allow_block_migration:
            blockers.append(Blocker(NotMigratable.DISKS,
                                    f"claim {v.claim_name or v.name} is on node-local storage: "
                                    "live migration needs sharedStorage on both nodes, or "
                                    "allowBlockMigration in the migration policy"))
            continue
        method = MigrationMethod.BLOCK  # node-local: copied while the guest runs
    return blockers, method


def _hypervisors(source: NodeCapacity | None, target: NodeCapacity | None) -> list[Blocker]:
    """virtsync: a node whose hypervisor cannot migrate (libvirt's test driver) is neither
    a source nor a target."""
    return [Blocker(NotMigratable.UNSUPPORTED, f"node {n.name}'s hypervisor cannot "
                    "live-migrate") for n in (source, target) if n is not None and not n.migrates]


def migratability(vm: VmSpec, body: Mapping[str, JSON], source: NodeCapacity | None,
                  target: NodeCapacity | None, policy: MigrationPolicy) -> Migratability:
    """Whether `vm` (its expanded `body` and typed view) can live-migrate from `source`
    to `target` under `policy`. Pure; None for a node means it is not known."""
    blockers = [*_hypervisors(source, target), *_interfaces(vm), *_cpu(vm, source, target),
                *_devices(body)]
    disk_blockers, method = _volumes(vm, body, shares_storage(source, target), policy)
    return Migratability(tuple(blockers + disk_blockers), method)
