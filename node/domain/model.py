"""Typed inputs of the domain builder: what the node has resolved before XML is built.

These are the contracts between the node parts:

- `node/storage/disks.py` (part B) turns a VM's disks + volumes into `ResolvedDisk`s (paths
  inside the node's storage directory, already created) and, for
  `spec.domain.firmware.kernelBoot`, a `KernelBoot` with host paths.
- `node/cluster/networks.py` (part B) turns a VM's interfaces + networks into
  `ResolvedInterface`s whose `source` says where the NIC plugs in.
- The cloud-init NoCloud seed is just another `ResolvedDisk`: part B writes the ISO
  (volume label `cidata`) and passes it with `device='cdrom'`, `format='raw'`,
  `readonly=True` under the volume's disk name; the builder needs nothing else for it.
- `NodeFacts` describes the host the domain will be defined on.

All types are frozen and plain: the builder (`node.domain.builder.build_domain`) is a
pure function of them, so the same inputs always give byte-identical XML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

DiskFormat: TypeAlias = Literal["qcow2", "raw"]
DiskDevice: TypeAlias = Literal["disk", "cdrom"]
DiskBus: TypeAlias = Literal["virtio", "sata", "scsi", "usb"]
DomainType: TypeAlias = Literal["kvm", "qemu", "test"]


@dataclass(frozen=True)
class ResolvedDisk:
    """One disk as the node will attach it.

    `name` is the KubeVirt disk name (spec.domain.devices.disks[].name); `path` is an
    absolute host path (a file inside the node's storage or image directory);
    `serial` is the disk serial from the identity store or a pin (None: no serial);
    `boot_order` is KubeVirt's bootOrder (1 = first). Order in the list is the order of
    `spec.domain.devices.disks`, which decides target device names (vda, vdb, ...).
    """

    name: str
    path: str
    format: DiskFormat
    device: DiskDevice
    bus: DiskBus
    readonly: bool
    serial: str | None
    boot_order: int | None
    shareable: bool = False


@dataclass(frozen=True)
class KernelBoot:
    """Direct kernel boot (spec.domain.firmware.kernelBoot) with host file paths."""

    kernel: str
    initrd: str | None
    cmdline: str | None


@dataclass(frozen=True)
class UserNet:
    """User-mode (slirp) networking: KubeVirt's `pod` network with masquerade binding."""


@dataclass(frozen=True)
class LibvirtNetwork:
    """A libvirt-managed network (e.g. `default`), from the Cluster config's networks."""

    name: str


@dataclass(frozen=True)
class Bridge:
    """An existing host bridge (e.g. `br0`), from the Cluster config's networks."""

    name: str


InterfaceSource: TypeAlias = UserNet | LibvirtNetwork | Bridge


@dataclass(frozen=True)
class ResolvedInterface:
    """One NIC: KubeVirt interface name, fixed MAC (from identity or a pin, lower-case
    `aa:bb:cc:dd:ee:ff`), libvirt model (`virtio`, `e1000`, `e1000e`, `rtl8139`, ...),
    where it plugs in, and KubeVirt's bootOrder for PXE (None: not bootable)."""

    name: str
    mac: str
    model: str
    source: InterfaceSource
    boot_order: int | None = None


@dataclass(frozen=True)
class NodeFacts:
    """The host a domain is built for.

    `domain_type` is 'kvm' only when KVM was proven to boot a guest, else 'qemu' (TCG);
    'test' is libvirt's test driver. `machine` is the default machine type when the VM
    does not pin one (e.g. 'q35' or 'pc'). `console_log_dir` is where each domain's
    serial console is logged (one file per domain, named after the domain).
    """

    name: str
    domain_type: DomainType
    arch: str
    machine: str
    console_log_dir: str
