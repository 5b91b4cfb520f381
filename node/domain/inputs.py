"""Everything one domain is built from, bundled so each configurator takes one argument."""

from __future__ import annotations

from dataclasses import dataclass

from node.domain.model import KernelBoot, NodeFacts, ResolvedDisk, ResolvedInterface
from node.identity.metadata import OwnerMetadata
from node.identity.node_store import Identity
from reconciler.core.vmspec import VmSpec


@dataclass(frozen=True)
class DomainInputs:
    name: str  # the libvirt domain name (see node.domain.naming)
    vm: VmSpec
    identity: Identity
    node: NodeFacts
    disks: tuple[ResolvedDisk, ...]
    interfaces: tuple[ResolvedInterface, ...]
    kernel: KernelBoot | None
    metadata: OwnerMetadata
