"""Named domain-building cases shared by the golden tests and the benchmark.

Every value is fixed (identity included), so each case always builds the same XML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.domain.inputs import DomainInputs
from node.domain.model import (
    Bridge,
    KernelBoot,
    LibvirtNetwork,
    NodeFacts,
    ResolvedDisk,
    ResolvedInterface,
    UserNet,
)
from node.domain.naming import domain_name
from node.identity.metadata import OwnerMetadata
from node.identity.node_store import Identity
from reconciler.core.vmspec import VmSpec

NODE = NodeFacts(
    name="node1",
    domain_type="qemu",
    arch="x86_64",
    machine="q35",
    console_log_dir="/var/log/virtsync/console",
)
STORAGE = "/var/lib/virtsync/storage"


def vm_body(
    domain: dict[str, Any],
    *,
    volumes: list[Any] | None = None,
    networks: list[Any] | None = None,
    run_strategy: str = "Always",
) -> dict[str, Any]:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "runStrategy": run_strategy,
            "template": {
                "spec": {
                    "domain": domain,
                    "networks": networks or [],
                    "volumes": volumes or [],
                }
            },
        },
    }


@dataclass(frozen=True)
class Case:
    name: str
    body: dict[str, Any]
    identity: Identity
    disks: tuple[ResolvedDisk, ...] = ()
    interfaces: tuple[ResolvedInterface, ...] = ()
    kernel: KernelBoot | None = None
    node: NodeFacts = NODE

    @property
    def vm(self) -> VmSpec:
        return VmSpec.from_body("default", "web", self.body)

    @property
    def metadata(self) -> OwnerMetadata:
        return OwnerMetadata("default", "web", "0123abcd", "sha256:feedface", 3)

    def inputs(self) -> DomainInputs:
        return DomainInputs(
            name=domain_name("default", "web"),
            vm=self.vm,
            identity=self.identity,
            node=self.node,
            disks=self.disks,
            interfaces=self.interfaces,
            kernel=self.kernel,
            metadata=self.metadata,
        )


IDENT = Identity(
    uuid="5c4e1d7a-2b3f-4c8e-9a6d-1f2e3d4c5b6a",
    serial="8A1F3C5E7B9D2F4A6C8E",
    macs={"default": "02:5a:11:22:33:44", "prod": "02:5a:11:22:33:45", "lab": "02:5a:11:22:33:46"},
    disk_serials={"root": "D00000000000000000A1", "data": "D00000000000000000A2"},
)

ROOT = ResolvedDisk(
    name="root",
    path=f"{STORAGE}/default/web/root.qcow2",
    format="qcow2",
    device="disk",
    bus="virtio",
    readonly=False,
    serial="D00000000000000000A1",
    boot_order=1,
)

MINIMAL = Case(
    name="minimal",
    body=vm_body(
        {"memory": {"guest": "512Mi"}, "devices": {"disks": [{"name": "root"}]}},
        volumes=[{"name": "root", "containerDisk": {"image": "img"}}],
    ),
    identity=IDENT,
    disks=(ROOT,),
)

FULL = Case(
    name="full",
    body=vm_body(
        {
            "cpu": {"sockets": 1, "cores": 2, "threads": 2},
            "memory": {"guest": "2Gi"},
            "machine": {"type": "pc-q35-7.2"},
            "firmware": {"uuid": IDENT.uuid, "serial": IDENT.serial},
            "devices": {
                "autoattachGraphicsDevice": True,
                "disks": [
                    {"name": "root", "bootOrder": 1, "disk": {"bus": "virtio"}},
                    {"name": "data", "disk": {"bus": "scsi"}, "shareable": True},
                    {"name": "install", "cdrom": {"bus": "sata"}, "bootOrder": 2},
                    {"name": "cloudinit", "cdrom": {"bus": "sata"}},
                ],
                "interfaces": [
                    {"name": "default", "masquerade": {}},
                    {"name": "prod", "bridge": {}, "model": "e1000e", "bootOrder": 3},
                    {"name": "lab", "bridge": {}},
                ],
            },
        },
        volumes=[
            {"name": "root", "containerDisk": {"image": "img"}},
            {"name": "data", "dataVolume": {"name": "web-data"}},
            {"name": "install", "containerDisk": {"image": "iso"}},
            {"name": "cloudinit", "cloudInitNoCloud": {"userData": "#cloud-config\n"}},
        ],
        networks=[
            {"name": "default", "pod": {}},
            {"name": "prod", "multus": {"networkName": "prod"}},
            {"name": "lab", "multus": {"networkName": "lab"}},
        ],
    ),
    identity=IDENT,
    disks=(
        ROOT,
        ResolvedDisk(
            "data",
            f"{STORAGE}/default/web/data.raw",
            "raw",
            "disk",
            "scsi",
            False,
            "D00000000000000000A2",
            None,
            shareable=True,
        ),
        ResolvedDisk(
            "install", "/var/lib/virtsync/images/debian.iso", "raw", "cdrom", "sata", True, None, 2
        ),
        ResolvedDisk(
            "cloudinit",
            f"{STORAGE}/default/web/cloudinit.iso",
            "raw",
            "cdrom",
            "sata",
            True,
            None,
            None,
        ),
    ),
    interfaces=(
        ResolvedInterface("default", "02:5a:11:22:33:44", "virtio", UserNet()),
        ResolvedInterface("prod", "02:5a:11:22:33:45", "e1000e", LibvirtNetwork("default"), 3),
        ResolvedInterface("lab", "02:5a:11:22:33:46", "virtio", Bridge("br0")),
    ),
)

KERNEL = Case(
    name="kernel-boot",
    body=vm_body(
        {
            "cpu": {"cores": 1},
            "memory": {"guest": "256Mi"},
            "firmware": {
                "kernelBoot": {
                    "kernelArgs": "console=ttyS0 quiet",
                    "container": {
                        "image": "tiny",
                        "kernelPath": "/vmlinux",
                        "initrdPath": "/initrd.cpio",
                    },
                }
            },
            "devices": {"interfaces": [{"name": "default", "masquerade": {}}]},
        },
        networks=[{"name": "default", "pod": {}}],
    ),
    identity=IDENT,
    interfaces=(ResolvedInterface("default", "02:5a:11:22:33:44", "virtio", UserNet()),),
    kernel=KernelBoot(
        "/var/lib/virtsync/images/tiny/vmlinux",
        "/var/lib/virtsync/images/tiny/initrd.cpio",
        "console=ttyS0 quiet",
    ),
)

EFI_KVM = Case(
    name="efi-kvm",
    body=vm_body(
        {
            "cpu": {"sockets": 2, "cores": 1, "model": "host-passthrough"},
            "resources": {"requests": {"memory": "1G"}},
            "firmware": {"bootloader": {"efi": {}}},
            "devices": {"autoattachSerialConsole": False, "disks": [{"name": "root"}]},
        },
        volumes=[{"name": "root", "containerDisk": {"image": "img"}}],
    ),
    identity=IDENT,
    disks=(ROOT,),
    node=NodeFacts("node2", "kvm", "x86_64", "q35", "/srv/console"),
)

CASES: tuple[Case, ...] = (MINIMAL, FULL, KERNEL, EFI_KVM)
