"""The readiness report (`virtsync readiness`): the adoption questions a platform team
answers before moving VMs, per VM and for the tree, from the desired tree and the
Cluster object alone (before merge; KubeVirt shows LiveMigratable only once a VMI runs).
Pure; rendered by `reconciler.render.readiness`.

Per VM: storage mode of each volume (node-local, shared, hostDisk), each interface and
whether it survives a migration, migratability with KubeVirt's reasons, CPU and memory
shape (instancetype resolved) and the nodes it fits by capacity, shutdown behaviour
(grace period, ACPI, expected guest downtime per change class, what a drain does), and
its security boundary (hostDisk, host devices, firmware, launchSecurity).

Capacity is what the Cluster object says (`memoryMiB`); a node without it is measured
live by the backend, which this report does not contact: such nodes are listed as
fitting with "capacity not configured" noted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from reconciler.core.expand import expand
from reconciler.core.migration import MigrationMethod, NotMigratable, eviction_strategy
from reconciler.core.model import JSON, Manifest
from reconciler.core.power import run_strategy, starts_on_create
from reconciler.core.vmspec import VmSpec
from reconciler.planning.eviction import drain_step
from reconciler.planning.migratable import Blocker, Migratability
from reconciler.planning.moves import MoveContext, migration_targets
from reconciler.planning.normalize import get_path
from reconciler.planning.schedule import NodeCapacity, place, request_of

SHARED, NODE_LOCAL, HOST_DISK = "shared", "node-local", "hostDisk"
UNKNOWN_KIB = 1 << 50  # a node whose capacity is measured live: not limited here
TEMPLATE = ("spec", "template", "spec")


@dataclass(frozen=True)
class Volume:
    name: str
    source: str  # persistentVolumeClaim, dataVolume, containerDisk, emptyDisk, hostDisk, ...
    storage: str  # shared, node-local, hostDisk
    detail: str = ""


@dataclass(frozen=True)
class Interface:
    name: str
    binding: str
    network: str  # "pod" or the multus networkName
    survives_migration: bool
    note: str


@dataclass(frozen=True)
class Shape:
    vcpus: int
    topology: str  # sockets × cores × threads
    cpu_model: str
    memory_mib: int
    instancetype: str
    preference: str
    fits: tuple[str, ...]
    unfit_reason: str  # ErrorUnschedulable's reason when it fits nowhere
    capacity_note: str


@dataclass(frozen=True)
class Shutdown:
    run_strategy: str
    grace_seconds: int
    method: str
    eviction_strategy: str
    drain: str  # what draining its node does
    downtime: Mapping[str, str]  # change class → expected guest downtime


@dataclass(frozen=True)
class Security:
    host_disks: tuple[str, ...]
    host_devices: tuple[str, ...]
    firmware: str
    launch_security: str  # "" when none

    @property
    def crosses_host_boundary(self) -> bool:
        return bool(self.host_disks or self.host_devices or self.launch_security)


@dataclass(frozen=True)
class Migration:
    migratable: bool
    method: str  # LiveMigration / BlockMigration, "" when not migratable
    source: str  # the node it would run on
    targets: tuple[str, ...]  # the nodes it can live-migrate to
    blockers: tuple[Blocker, ...]


@dataclass(frozen=True)
class VmReadiness:
    key: str
    source: str  # file
    storage: tuple[Volume, ...]
    interfaces: tuple[Interface, ...]
    migration: Migration
    shape: Shape
    shutdown: Shutdown
    security: Security


@dataclass(frozen=True)
class Summary:
    vms: int
    migratable: int
    blockers: Mapping[str, int]  # reason → VMs
    storage: Mapping[str, int]  # storage mode → volumes
    interfaces_lost: int  # interfaces that do not survive a migration
    unschedulable: int
    host_boundary: int  # VMs with hostDisk, host devices or launchSecurity


@dataclass(frozen=True)
class Report:
    summary: Summary
    vms: tuple[VmReadiness, ...]
    nodes: tuple[str, ...]
    capacity_unknown: tuple[str, ...]


def _storage(vm: VmSpec, nodes: Sequence[NodeCapacity], body: Mapping[str, JSON]) -> tuple[
        Volume, ...]:
    dirs = {n.shared_storage for n in nodes}
    shared = bool(nodes) and len(dirs) == 1 and None not in dirs
    where = (f"storageDir {next(iter(dirs))} shared by {', '.join(n.name for n in nodes)}"
             if shared else "on the node's own storageDir")
    out = []
    for v in vm.volumes:
        if v.kind == "hostDisk":
            flag = next((get_path(r, ("hostDisk", "shared")) for r in
                         get_path(body, (*TEMPLATE, "volumes")) or []
                         if isinstance(r, Mapping) and r.get("name") == v.name), None)
            out.append(Volume(v.name, v.kind, HOST_DISK,
                              f"{v.path} ({'shared' if flag is True else 'not shared'})"))
        else:
            claim = f"claim {v.claim_name}, " if v.claim_name else ""
            out.append(Volume(v.name, v.kind, SHARED if shared else NODE_LOCAL, claim + where))
    return tuple(out)


def _interfaces(vm: VmSpec) -> tuple[Interface, ...]:
    out = []
    for i in vm.interfaces:
        net = vm.network(i.name)
        name = (net.network_name or "?") if net and net.kind == "multus" else "pod"
        binding = i.binding or "masquerade"
        if name == "pod" and binding == "bridge":
            out.append(Interface(i.name, binding, name, False,
                                 f"{NotMigratable.INTERFACE}: bridge binding on the pod network"))
        elif name == "pod":
            out.append(Interface(i.name, binding, name, True,
                                 "MAC kept; the guest's NAT address comes from the target "
                                 "node's network"))
        else:
            out.append(Interface(i.name, binding, name, True,
                                 f"MAC kept; network {name} must reach every node (Cluster "
                                 "spec.networks is cluster-wide)"))
    return tuple(out)


def _migration(m: Manifest, source: str | None, ctx: MoveContext) -> Migration:
    if source is None:
        return Migration(False, "", "", (),
                         (Blocker(NotMigratable.NO_TARGET, "no node can hold it"),))
    targets, verdict = migration_targets(m, source, ctx)
    if not targets:
        return Migration(False, "", source, (), verdict.blockers)
    return Migration(True, verdict.method.value, source, targets, ())


def _shape(vm: VmSpec, m: Manifest, fits: Sequence[str], unfit: str,
           unknown: Sequence[str]) -> Shape:
    cpu = vm.cpu
    ref = get_path(m.body, ("spec", "instancetype", "name"))
    pref = get_path(m.body, ("spec", "preference", "name"))
    unchecked = [n for n in fits if n in unknown]
    note = (f"capacity not configured for {', '.join(unchecked)} (measured live by the "
            "backend; not checked here)" if unchecked else "")
    return Shape(cpu.vcpus, f"{cpu.sockets}×{cpu.cores}×{cpu.threads}",
                 cpu.model or "host-model (KubeVirt's default)", -(-vm.memory_kib // 1024),
                 str(ref) if ref else "", str(pref) if pref else "", tuple(fits), unfit, note)


def _shutdown(vm: VmSpec, m: Manifest, migration: Migration, ctx: MoveContext) -> Shutdown:
    grace = vm.termination_grace_seconds
    strategy = eviction_strategy(m.body)
    runs = run_strategy(m.body)
    verdict = Migratability(migration.blockers,
                            MigrationMethod(migration.method or MigrationMethod.LIVE))
    step = drain_step(strategy, running=starts_on_create(runs), migration=verdict,
                      run_strategy=runs)
    policy_timeout = ctx.policy.timeout_seconds(vm.memory_kib)
    return Shutdown(
        str(runs) if runs else "unknown", grace,
        f"ACPI power button, waits up to {grace} s; powered off only with --force",
        str(strategy), f"{step.action}: {step.reason}",
        {"none": "none",
         "live": "none (applied to the running guest)",
         "migrate": f"a pause at switch-over, typically well under a second; cancelled "
                    f"after {policy_timeout} s (completionTimeoutPerGiB), guest left on "
                    "the source",
         "restart": f"guest shutdown (up to {grace} s) plus boot",
         "replace": f"guest shutdown (up to {grace} s), redefinition, boot"})


def _security(vm: VmSpec, body: Mapping[str, JSON]) -> Security:
    devices = [str(get_path(d, ("name",))) for key in ("hostDevices", "gpus")
               for d in get_path(body, (*TEMPLATE, "domain", "devices", key)) or []]
    fw = vm.firmware
    firmware = ("kernelBoot" if fw.kernel_boot else
                f"EFI{' secure boot' if fw.secure_boot else ''}" if fw.bootloader == "efi"
                else "BIOS")
    security = get_path(body, (*TEMPLATE, "domain", "launchSecurity"))
    launch = ", ".join(sorted(security)) if isinstance(security, Mapping) else ""
    return Security(tuple(v.path or "" for v in vm.volumes if v.kind == "hostDisk"),
                    tuple(devices), firmware, launch)


def vm_readiness(m: Manifest, nodes: Sequence[NodeCapacity], ctx: MoveContext,
                 unknown: Sequence[str] = ()) -> VmReadiness:
    body = expand(m, ctx.refs)
    vm = VmSpec.from_body(m.namespace, m.name, body)
    req = replace(request_of(m, ctx.refs), will_run=True)
    fits = [n.name for n in nodes if place([n], req).scheduled]
    chosen = place(nodes, req)
    migration = _migration(m, chosen.node, ctx)
    fitting = [n for n in nodes if n.name in fits]
    return VmReadiness(str(m.key), m.source.file, _storage(vm, fitting, body),
                       _interfaces(vm), migration,
                       _shape(vm, m, fits, chosen.reason, unknown),
                       _shutdown(vm, m, migration, ctx), _security(vm, body))


def readiness(desired: Sequence[Manifest], nodes: Sequence[NodeCapacity], ctx: MoveContext,
              unknown: Sequence[str] = ()) -> Report:
    """The report for every VM in `desired`, nodes as configured (`unknown`: nodes whose
    capacity the Cluster object does not give; their free memory counts as unlimited)."""
    vms = tuple(vm_readiness(m, nodes, ctx, unknown) for m in desired
                if m.kind == "VirtualMachine")
    blockers = Counter(b.reason.value for v in vms for b in v.migration.blockers[:1])
    storage = Counter(vol.storage for v in vms for vol in v.storage)
    summary = Summary(
        vms=len(vms), migratable=sum(v.migration.migratable for v in vms),
        blockers=dict(sorted(blockers.items())), storage=dict(sorted(storage.items())),
        interfaces_lost=sum(not i.survives_migration for v in vms for i in v.interfaces),
        unschedulable=sum(not v.shape.fits for v in vms),
        host_boundary=sum(v.security.crosses_host_boundary for v in vms))
    return Report(summary, vms, tuple(n.name for n in nodes), tuple(unknown))
