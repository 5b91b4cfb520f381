"""VM interfaces → where each NIC plugs in on a libvirt node, MACs always fixed.

- KubeVirt's `pod` network becomes libvirt user-mode networking (slirp): the guest sits
  behind the host's address like KubeVirt's masquerade binding (it gets 10.0.2.15).
- A `multus` network's `networkName` is looked up in the Cluster config's
  `spec.networks`: each entry names exactly one of a libvirt network
  (`libvirtNetwork`) or an existing host bridge (`bridge`).
- Every interface gets the MAC from the identity store (which honours a pin in git);
  an interface without a stored MAC is an error, never a reason to let libvirt pick.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.cluster.config import NetworkConfig
from node.identity.node_store import Identity
from reconciler.core.model import VirtsyncError, format_path
from reconciler.core.vmspec import VmSpec

if TYPE_CHECKING:  # imported where made: a no-op plan of a Cluster without networks
    # never makes one (issue 13)
    from node.domain.model import InterfaceSource, ResolvedInterface

# Bindings that fit a user-mode NIC on the pod network. `bridge` on the pod network is
# accepted too: with no pod IP to hand over, it behaves like masquerade here.
POD_BINDINGS = frozenset({None, "masquerade", "slirp", "bridge"})
# Bindings that need host hardware or plugins a libvirt node does not have.
UNSUPPORTED_BINDINGS = frozenset({"sriov", "macvtap", "passt", "binding"})
NIC_MODELS = frozenset({"virtio", "e1000", "e1000e", "rtl8139", "ne2k_pci", "pcnet"})


@dataclass(frozen=True)
class NetworkMap:
    """multus networkName → source, from the Cluster config."""

    sources: Mapping[str, InterfaceSource]

    @classmethod
    def from_config(cls, networks: Iterable[NetworkConfig]) -> NetworkMap:
        """The Cluster's networks as node.cluster.config.parse_cluster read them (and checked)."""
        return cls({n.name: _source(n) for n in networks})

    def lookup(self, network_name: str) -> InterfaceSource | None:
        # Multus allows "namespace/name"; the Cluster config names networks without one.
        found = self.sources.get(network_name)
        if found is None and "/" in network_name:
            found = self.sources.get(network_name.rsplit("/", 1)[1])
        return found


def _source(network: NetworkConfig) -> InterfaceSource:
    from node.domain.model import Bridge, LibvirtNetwork  # only a Cluster with networks

    return LibvirtNetwork(network.libvirt_network) if network.libvirt_network \
        else Bridge(network.bridge or "")


def resolve_interfaces(
    vm: VmSpec, identity: Identity, networks: NetworkMap
) -> tuple[ResolvedInterface, ...]:
    """One ResolvedInterface per `spec.domain.devices.interfaces[]`, in spec order."""
    from node.domain.model import ResolvedInterface, UserNet

    base = ("spec", "template", "spec", "domain", "devices", "interfaces")
    out: list[ResolvedInterface] = []
    for iface in vm.interfaces:
        where = format_path((*base, iface.index))
        net = vm.network(iface.name)
        if net is None:
            raise VirtsyncError(f"{where}: no network named {iface.name!r} in spec.networks")
        if iface.binding in UNSUPPORTED_BINDINGS:
            raise VirtsyncError(
                f"{where}.{iface.binding}: binding not supported on libvirt nodes "
                "(use masquerade on the pod network, or a multus network with bridge)"
            )
        if iface.model not in NIC_MODELS:
            raise VirtsyncError(f"{where}.model: unsupported NIC model {iface.model!r}")
        source: InterfaceSource
        if net.kind == "pod":
            if iface.binding not in POD_BINDINGS:
                raise VirtsyncError(
                    f"{where}: binding {iface.binding} does not fit the pod network"
                )
            source = UserNet()
        else:
            if not net.network_name:
                raise VirtsyncError(f"{where}: multus network {net.name!r} has no networkName")
            found = networks.lookup(net.network_name)
            if found is None:
                known = ", ".join(sorted(networks.sources)) or "none"
                raise VirtsyncError(
                    f"{where}: multus networkName {net.network_name!r} is not in the Cluster "
                    f"config's spec.networks (known: {known})"
                )
            source = found
        mac = identity.macs.get(iface.name)
        if not mac:
            raise VirtsyncError(f"{where}: no MAC in the identity store for {iface.name!r}")
        if iface.mac is not None and iface.mac != mac:
            raise VirtsyncError(
                f"{where}.macAddress: pinned {iface.mac} but the identity store holds {mac}"
            )
        out.append(
            ResolvedInterface(
                name=iface.name,
                mac=mac,
                model=iface.model,
                source=source,
                boot_order=iface.boot_order,
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class NetworkProblem:
    interface: str
    message: str


def check_sources(
    conn: Any, interfaces: Sequence[ResolvedInterface], sys_class_net: str = "/sys/class/net"
) -> tuple[NetworkProblem, ...]:
    """What is missing on the node for these NICs (`conn` is a libvirt.virConnect):
    an undefined or inactive libvirt network, or a host bridge that does not exist."""
    import libvirt

    from node.domain.model import Bridge, LibvirtNetwork

    problems: list[NetworkProblem] = []
    for iface in interfaces:
        src = iface.source
        if isinstance(src, LibvirtNetwork):
            try:
                net = conn.networkLookupByName(src.name)
            except libvirt.libvirtError:
                problems.append(
                    NetworkProblem(iface.name, f"libvirt network {src.name!r} is not defined")
                )
                continue
            if not net.isActive():
                problems.append(
                    NetworkProblem(iface.name, f"libvirt network {src.name!r} is not active")
                )
        elif isinstance(src, Bridge) and not Path(sys_class_net, src.name, "bridge").is_dir():
            problems.append(NetworkProblem(iface.name, f"host bridge {src.name!r} does not exist"))
    return tuple(problems)
