"""Which node a VM goes to: node labels (`spec.template.spec.nodeSelector`) and free memory.

Pure: callers measure the nodes (`NodeCapacity`) and pass them in. Rules, in order:

1. A VM that already has a domain on a node stays there (moving it is a `replace` or a
   migration, which the plan decides, never placement).
2. Only nodes whose labels contain every `nodeSelector` pair are candidates.
3. A VM with hostDisk volumes needs a node whose `hostDiskDir` holds every hostDisk path
   (safety rule 14: elsewhere the node would refuse them).
4. When the VM is going to run, a candidate needs `free_kib >= memory_kib`; a VM that
   stays off (Halted/Manual) only needs a matching node.
5. Among the fitting nodes, the one with the most free memory wins; ties go to the first
   node in the Cluster config, so the choice is deterministic.

When nothing fits the result carries a Kubernetes-style reason
("0/2 nodes are available: 1 node(s) didn't match node selector, 1 node(s) had
insufficient memory (need 4096 MiB)") for the `ErrorUnschedulable` status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.hostdisk import target

UNSCHEDULABLE = "ErrorUnschedulable"


@dataclass(frozen=True)
class NodeCapacity:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    free_kib: int = 0
    reachable: bool = True
    host_disk_dir: str | None = None


def holds(node: NodeCapacity, host_disks: Sequence[str]) -> bool:
    """True when the node's hostDiskDir holds every hostDisk path (by name; the node
    resolves symlinks again when it prepares the disks)."""
    root = node.host_disk_dir
    return not host_disks or (root is not None and all(target(root, p) for p in host_disks))


@dataclass(frozen=True)
class Placement:
    """`node` is the chosen node, or None with `reason` saying why nothing fits."""

    node: str | None
    reason: str = ""

    @property
    def scheduled(self) -> bool:
        return self.node is not None


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def place(
    nodes: Sequence[NodeCapacity],
    *,
    selector: Mapping[str, str],
    memory_kib: int,
    will_run: bool,
    current: str | None = None,
    host_disks: Sequence[str] = (),
) -> Placement:
    if current is not None:
        return Placement(current)
    counts = {"selector": 0, "hostdisk": 0, "memory": 0, "unreachable": 0}
    fitting: list[tuple[int, int, str]] = []
    for order, node in enumerate(nodes):
        if not node.reachable:
            counts["unreachable"] += 1
        elif not matches(selector, node.labels):
            counts["selector"] += 1
        elif not holds(node, host_disks):
            counts["hostdisk"] += 1
        elif will_run and node.free_kib < memory_kib:
            counts["memory"] += 1
        else:
            # Most free memory first, then config order.
            fitting.append((-node.free_kib, order, node.name))
    if fitting:
        return Placement(min(fitting)[2])
    parts = []
    if counts["selector"]:
        parts.append(f"{counts['selector']} node(s) didn't match node selector")
    if counts["hostdisk"]:
        parts.append(f"{counts['hostdisk']} node(s) had no hostDiskDir holding the hostDisk "
                     "path(s)")
    if counts["memory"]:
        parts.append(
            f"{counts['memory']} node(s) had insufficient memory "
            f"(need {-(-memory_kib // 1024)} MiB)"
        )
    if counts["unreachable"]:
        parts.append(f"{counts['unreachable']} node(s) were unreachable")
    detail = ", ".join(parts) or "no nodes configured"
    return Placement(None, f"0/{len(nodes)} nodes are available: {detail}")
