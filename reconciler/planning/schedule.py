"""Which node each VM runs on: a pure planning step, run before the diff.

Inputs are facts only: the desired VMs (with the instancetypes they reference), the node
each live VM is on, and the nodes as the backend reports them (`NodeCapacity`: labels,
free memory, reachable, schedulable, hostDisk root). A backend that reports no nodes
(KubeVirt, git mode) gets no placement step. Rules, in order:

1. A VM that already has a domain stays on its node while that node still satisfies
   its nodeSelector, required node affinity and hostDisk paths (moving it is a live
   migration or a `replace`, shown in the plan as `previous_node → node`). A cordoned
   node (`schedulable: false`) takes no new VMs and is drained: its VMs are placed
   elsewhere when another node fits, and the plan applies their eviction strategy
   (`reconciler.planning.moves`: one that must not be shut down stays, saying why).
2. Only reachable, schedulable nodes whose labels contain every `nodeSelector` pair and
   match one of the `requiredDuringSchedulingIgnoredDuringExecution` node selector terms
   (In, NotIn, Exists, DoesNotExist, Gt, Lt on labels; `metadata.name` in matchFields)
   are candidates.
3. A VM with hostDisk volumes needs a node whose `hostDiskDir` holds every path (rule 14).
4. A VM that is going to run needs `free_kib >= memory_kib` and, where the node reports
   its vCPUs, `free_vcpus >= vcpus` (both after the node's overcommit ratios); VMs
   placed earlier in the same plan count against the node. One that stays off only
   needs a matching node.
5. Among the fitting nodes the one with the most free memory wins; ties go to the first
   node in the Cluster config, so the choice is deterministic.

When nothing fits, the result carries a Kubernetes-style reason ("0/2 nodes are
available: 1 node(s) didn't match node selector, ...") for `ErrorUnschedulable`; a VM that
exists keeps its node then (nothing is torn down for a move that cannot happen).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.core.hostdisk import target
from reconciler.core.model import JSON, Manifest, ObjectKey, PrintableStatus
from reconciler.core.power import starts_on_create
from reconciler.core.quantity import parse_quantity
from reconciler.core.vmspec import VmSpec
from reconciler.planning.normalize import get_path

UNSCHEDULABLE = PrintableStatus.ERROR_UNSCHEDULABLE
DRAIN_HELD = "drain of"  # a Placement reason: the VM stays on its cordoned node
VM_KIND = "VirtualMachine"


@dataclass(frozen=True)
class NodeCapacity:
    """One node as its backend reports it (Observation.nodes)."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    free_kib: int = 0
    reachable: bool = True
    host_disk_dir: str | None = None
    schedulable: bool = True  # False: cordoned, takes no new VMs
    # Live migration's facts (issue 10): the storage directory when other nodes share it
    # (the RWX equivalent; None: node-local) and the host CPU model when configured.
    shared_storage: str | None = None
    cpu_model: str | None = None
    # Whether the node's hypervisor can live-migrate at all (libvirt's test driver cannot).
    migrates: bool = True
    # vCPUs still free after the CPU overcommit (None: not measured, not checked).
    free_vcpus: int | None = None


@dataclass(frozen=True)
class Placement:
    """`node` is the chosen node, or None with `reason` saying why nothing fits."""

    node: str | None
    reason: str = ""

    @property
    def scheduled(self) -> bool:
        return self.node is not None


@dataclass(frozen=True)
class Request:
    """What one VM asks of a node."""

    selector: Mapping[str, str] = field(default_factory=dict)
    terms: tuple[Mapping[str, Any], ...] = ()  # required node affinity, ORed
    memory_kib: int = 0
    will_run: bool = True
    host_disks: tuple[str, ...] = ()
    vcpus: int = 1


@dataclass(frozen=True)
class Used:
    """What VMs placed earlier in the same plan take from one node."""

    kib: int = 0
    vcpus: int = 0

    def plus(self, req: Request) -> Used:
        return Used(self.kib + req.memory_kib, self.vcpus + req.vcpus)


class Miss(StrEnum):
    """Why a node was not a candidate, in the order the reason lists them."""

    SELECTOR = "didn't match node selector"
    AFFINITY = "didn't match node affinity"
    CORDONED = "were unschedulable (cordoned)"
    HOSTDISK = "had no hostDiskDir holding the hostDisk path(s)"
    MEMORY = "had insufficient memory"
    CPU = "had insufficient cpu"
    UNREACHABLE = "were unreachable"


def holds(node: NodeCapacity, host_disks: Sequence[str]) -> bool:
    """True when the node's hostDiskDir holds every hostDisk path (by name; the node
    resolves symlinks again when it prepares the disks)."""
    root = node.host_disk_dir
    return not host_disks or (root is not None and all(target(root, p) for p in host_disks))


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _expression(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op = str(expr.get("key", "")), expr.get("operator")
    values = [str(v) for v in expr.get("values") or []]
    value = labels.get(key)
    if op == "In":
        return value in values
    if op == "NotIn":
        return value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and len(values) == 1:
        have, want = _int(value), _int(values[0])
        if have is None or want is None:
            return False
        return have > want if op == "Gt" else have < want
    return False


def term_matches(term: Mapping[str, Any], node: NodeCapacity) -> bool:
    """One node selector term: every matchExpression on labels and every matchField
    (only `metadata.name` exists for a node) holds. An empty term matches nothing, as
    in Kubernetes."""
    exprs = [e for e in term.get("matchExpressions") or [] if isinstance(e, Mapping)]
    fields = [e for e in term.get("matchFields") or [] if isinstance(e, Mapping)]
    if not exprs and not fields:
        return False
    return all(_expression(e, node.labels) for e in exprs) and all(
        _expression(f, {"metadata.name": node.name}) for f in fields)


def _miss(node: NodeCapacity, req: Request, *, fresh: bool) -> Miss | None:
    """Why `node` cannot hold the VM by its rules (memory aside); None when it can.
    `fresh`: the VM is not on this node yet (a cordoned node refuses it)."""
    if not node.reachable:
        return Miss.UNREACHABLE
    if not matches(req.selector, node.labels):
        return Miss.SELECTOR
    if req.terms and not any(term_matches(t, node) for t in req.terms):
        return Miss.AFFINITY
    if fresh and not node.schedulable:
        return Miss.CORDONED
    if not holds(node, req.host_disks):
        return Miss.HOSTDISK
    return None


def _reason(counts: Mapping[Miss, int], total: int, req: Request) -> str:
    parts = []
    for miss in Miss:
        if counts.get(miss):
            text = f"{counts[miss]} node(s) {miss.value}"
            if miss is Miss.MEMORY:
                text += f" (need {-(-req.memory_kib // 1024)} MiB)"
            if miss is Miss.CPU:
                text += f" (need {req.vcpus} vCPU(s))"
            parts.append(text)
    return f"0/{total} nodes are available: {', '.join(parts) or 'no nodes configured'}"


def _short(node: NodeCapacity, req: Request, used: Used) -> Miss | None:
    """Which of the node's capacities the running VM would exceed, if any."""
    if node.free_kib - used.kib < req.memory_kib:
        return Miss.MEMORY
    if node.free_vcpus is not None and node.free_vcpus - used.vcpus < req.vcpus:
        return Miss.CPU
    return None


def place(nodes: Sequence[NodeCapacity], req: Request, current: str | None = None,
          used: Mapping[str, Used] | None = None) -> Placement:
    """One VM's node. `used`: what VMs placed earlier in this plan already take."""
    taken = used or {}
    if current is not None:
        here = next((n for n in nodes if n.name == current), None)
        miss = _miss(here, req, fresh=False) if here is not None else None
        drained = here is not None and miss is None and not here.schedulable
        if here is None or miss is Miss.UNREACHABLE or (miss is None and not drained):
            return Placement(current)  # rule 1 (an unreachable node is not a reason to move)
    counts: dict[Miss, int] = {}
    fitting: list[tuple[int, int, str]] = []
    for order, node in enumerate(nodes):
        miss = _miss(node, req, fresh=True)
        use = taken.get(node.name, Used())
        free = node.free_kib - use.kib
        if miss is None and req.will_run:
            miss = _short(node, req, use)
        if miss is None:
            fitting.append((-free, order, node.name))  # most free memory first
        else:
            counts[miss] = counts.get(miss, 0) + 1
    if fitting:
        return Placement(min(fitting)[2])
    reason = _reason(counts, len(nodes), req)
    return Placement(current, reason)  # an existing VM keeps its node


# --- what a VM asks for ---------------------------------------------------------------


def instancetype_of(vm: VmSpec, refs: Mapping[ObjectKey, Manifest]) -> Manifest | None:
    """The instancetype object the VM refers to, None without one (or not in `refs`)."""
    ref = vm.reference("instancetype")
    if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str):
        return None
    kind = str(ref.get("kind") or "VirtualMachineClusterInstancetype")
    namespace = "" if kind.startswith("VirtualMachineCluster") else vm.namespace
    return refs.get(ObjectKey(kind, namespace, str(ref["name"])))


def _instancetype(vm: VmSpec, refs: Mapping[ObjectKey, Manifest]) -> Mapping[str, JSON]:
    found = instancetype_of(vm, refs)
    spec = found.body.get("spec") if found is not None else None
    return spec if isinstance(spec, Mapping) else {}


def _kib(value: JSON) -> int:
    amount = parse_quantity(str(value)) if isinstance(value, str | int) else None
    return int(amount // 1024) if amount is not None else 0


def request_of(vm: Manifest, refs: Mapping[ObjectKey, Manifest]) -> Request:
    """The VM's demand as KubeVirt reads it: nodeSelector (the instancetype's merged in),
    required node affinity, guest memory (from the VM or its instancetype), hostDisk
    paths, and whether it will run."""
    spec = VmSpec.of(vm)
    itype = _instancetype(spec, refs)
    selector: dict[str, str] = {}
    itype_selector = itype.get("nodeSelector")
    if isinstance(itype_selector, Mapping):
        selector.update({str(k): str(v) for k, v in itype_selector.items()})
    selector.update(spec.node_selector)  # the VM's own pairs win
    return Request(
        selector=selector,
        terms=spec.required_node_terms,
        memory_kib=_kib(spec.declared_memory or get_path(itype, ("memory", "guest"))),
        will_run=starts_on_create(spec.run_strategy),
        host_disks=spec.host_disk_paths,
        vcpus=_vcpus(spec, itype),
    )


def _vcpus(spec: VmSpec, itype: Mapping[str, JSON]) -> int:
    """The instancetype's `cpu.guest` (KubeVirt refuses a VM that sets its own CPU
    topology beside one), else the VM's sockets × cores × threads."""
    guest = get_path(itype, ("cpu", "guest"))
    if isinstance(guest, int) and not isinstance(guest, bool) and guest > 0:
        return guest
    return spec.cpu.vcpus


RequestOf = Callable[[Manifest, Mapping[ObjectKey, Manifest]], Request]


def schedule(vms: Sequence[Manifest], current: Mapping[ObjectKey, str],
             nodes: Sequence[NodeCapacity], refs: Mapping[ObjectKey, Manifest],
             request: RequestOf = request_of) -> dict[ObjectKey, Placement]:
    """Every desired VM's placement. VMs that stay are placed first (they hold their
    memory already), then the others in key order, each counting against the nodes
    chosen before it. `current`: the node each existing VM is on; `request`: how a
    VM's demand is read (`request_of`, or a caller's memo of it)."""
    out: dict[ObjectKey, Placement] = {}
    used: dict[str, Used] = {}
    wanted = sorted((m for m in vms if m.kind == VM_KIND),
                    key=lambda m: (m.key not in current, m.key))
    for vm in wanted:
        req = request(vm, refs)
        here = current.get(vm.key)
        chosen = place(nodes, req, here, used)
        out[vm.key] = chosen
        if chosen.node is not None and chosen.node != here and req.will_run:
            used[chosen.node] = used.get(chosen.node, Used()).plus(req)
    return out
