"""The domain builder: (VM spec, identity, node facts, resolved disks/NICs, kernel,
owner metadata) → libvirt domain XML, as a pure function.

    element = build_domain(vm, identity, node, disks, interfaces, kernel, metadata)
    xml = to_xml(element)

Domain name: `<namespace>_<name>` (node.domain.naming — cannot collide). Inputs come
from node.domain.model (ResolvedDisk/ResolvedInterface/KernelBoot/NodeFacts, produced by
node/storage/disks.py and node/cluster/networks.py), node.identity.node_store.Identity and node.identity.metadata.
OwnerMetadata. The XML is made by small configurators (node.domain.configure.*), each
owning one concern; children are then put in libvirt's canonical order so the output
is byte-stable and reads like `virsh dumpxml`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lxml import etree

from node.domain.configure.console import configure_graphics, configure_serial_console
from node.domain.configure.cpu import configure_cpu
from node.domain.configure.disks import configure_disks
from node.domain.configure.firmware import configure_features, configure_os, configure_sysinfo
from node.domain.configure.general import (
    configure_general,
    configure_lifecycle,
    configure_metadata,
)
from node.domain.configure.interfaces import configure_interfaces
from node.domain.configure.memory import configure_memory
from node.domain.inputs import DomainInputs
from node.domain.model import KernelBoot, NodeFacts, ResolvedDisk, ResolvedInterface
from node.domain.naming import domain_name
from node.domain.xml import to_xml
from node.identity.metadata import OwnerMetadata
from node.identity.node_store import Identity
from reconciler.core.model import VirtsyncError
from reconciler.core.vmspec import VmSpec

__all__ = ["CONFIGURATORS", "build_domain", "build_from_inputs", "to_xml"]

Configurator = Callable[[DomainInputs, etree._Element], None]

CONFIGURATORS: tuple[Configurator, ...] = (
    configure_general,
    configure_metadata,
    configure_memory,
    configure_cpu,
    configure_sysinfo,
    configure_os,
    configure_features,
    configure_lifecycle,
    configure_disks,
    configure_interfaces,
    configure_serial_console,
    configure_graphics,
)

# libvirt's own order of <domain> children and of <devices> children.
_TOP_ORDER = (
    "name", "uuid", "title", "description", "metadata", "memory", "currentMemory",
    "vcpu", "sysinfo", "os", "features", "cpu", "clock", "on_poweroff", "on_reboot",
    "on_crash", "devices",
)  # fmt: skip
_DEVICE_ORDER = (
    "emulator", "disk", "controller", "interface", "serial", "console", "input",
    "graphics", "video", "memballoon",
)  # fmt: skip


def _sort_children(parent: etree._Element, order: Sequence[str]) -> None:
    rank = {tag: i for i, tag in enumerate(order)}
    children = list(parent)
    for el in children:
        parent.remove(el)
    # sorted() is stable: elements of one kind keep the order configurators gave them.
    for el in sorted(children, key=lambda e: rank.get(str(e.tag), len(rank))):
        parent.append(el)


def build_from_inputs(inp: DomainInputs) -> etree._Element:
    dom = etree.Element("domain")
    for configure in CONFIGURATORS:
        configure(inp, dom)
    _sort_children(dom, _TOP_ORDER)
    devices = dom.find("devices")
    if devices is not None:
        _sort_children(devices, _DEVICE_ORDER)
    return dom


def build_domain(
    vm: VmSpec,
    identity: Identity,
    node: NodeFacts,
    disks: Sequence[ResolvedDisk],
    interfaces: Sequence[ResolvedInterface],
    kernel: KernelBoot | None,
    metadata: OwnerMetadata,
) -> etree._Element:
    """The `<domain>` element for `vm` on `node`. Pure: same inputs, same XML."""
    if (metadata.namespace, metadata.name) != (vm.namespace, vm.name):
        raise VirtsyncError(
            f"owner metadata names {metadata.namespace}/{metadata.name}, "
            f"but the VM is {vm.namespace}/{vm.name}"
        )
    inp = DomainInputs(
        name=domain_name(vm.namespace, vm.name),
        vm=vm,
        identity=identity,
        node=node,
        disks=tuple(disks),
        interfaces=tuple(interfaces),
        kernel=kernel,
        metadata=metadata,
    )
    return build_from_inputs(inp)
