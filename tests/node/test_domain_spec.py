"""reconciler.core.vmspec: the typed view of a VirtualMachine body the node builds from."""

from __future__ import annotations

from typing import Any

import pytest
from domain_cases import FULL, KERNEL, vm_body

from reconciler.core.model import VirtsyncError
from reconciler.core.quantity import byte_size
from reconciler.core.vmspec import VmSpec


def test_full_case_reads_every_field() -> None:
    vm = FULL.vm
    assert (vm.cpu.sockets, vm.cpu.cores, vm.cpu.threads, vm.cpu.vcpus) == (1, 2, 2, 4)
    assert vm.memory_kib == 2 * 1024 * 1024
    assert vm.machine_type == "pc-q35-7.2"
    assert vm.firmware.uuid == FULL.identity.uuid and vm.firmware.serial == FULL.identity.serial
    assert [(d.name, d.device, d.bus, d.readonly, d.boot_order) for d in vm.disks] == [
        ("root", "disk", "virtio", False, 1),
        ("data", "disk", "scsi", False, None),
        ("install", "cdrom", "sata", True, 2),
        ("cloudinit", "cdrom", "sata", True, None),
    ]
    assert vm.disk("data") is not None and vm.disk("data").shareable  # type: ignore[union-attr]
    assert [(i.name, i.model, i.binding) for i in vm.interfaces] == [
        ("default", "virtio", "masquerade"),
        ("prod", "e1000e", "bridge"),
        ("lab", "virtio", "bridge"),
    ]
    assert vm.network("prod") is not None and vm.network("prod").network_name == "prod"  # type: ignore[union-attr]
    assert vm.volume("data") is not None and vm.volume("data").claim_name == "web-data"  # type: ignore[union-attr]
    assert vm.graphics and vm.serial_console and vm.run_strategy == "Always"


def test_cloud_init_data_never_in_repr() -> None:
    vm = FULL.vm
    seed = vm.volume("cloudinit")
    assert seed is not None and seed.cloud_init is not None
    assert seed.cloud_init.user_data == "#cloud-config\n"
    assert "cloud-config" not in repr(vm)


def test_kernel_boot() -> None:
    kb = KERNEL.vm.firmware.kernel_boot
    assert kb is not None
    assert (kb.image, kb.kernel_path, kb.initrd_path, kb.kernel_args) == (
        "tiny", "/vmlinux", "/initrd.cpio", "console=ttyS0 quiet",
    )  # fmt: skip


@pytest.mark.parametrize(
    "text,expected",
    [("1Gi", 1 << 30), ("512Mi", 512 << 20), ("1G", 10**9), ("1024", 1024), ("1.5Ki", 1536),
     (2048, 2048)],
)  # fmt: skip
def test_quantities(text: Any, expected: int) -> None:
    assert byte_size(text, ("x",)) == expected


@pytest.mark.parametrize(
    "domain,message",
    [
        ({}, "memory.guest"),
        ({"memory": {"guest": "lots"}}, "not a quantity"),
        ({"memory": {"guest": "1Gi"}, "cpu": {"cores": 0}}, "cpu.cores"),
        ({"memory": {"guest": "1Gi"}, "firmware": {"uuid": "nope"}}, "firmware.uuid"),
        (
            {"memory": {"guest": "1Gi"},
             "devices": {"interfaces": [{"name": "a", "macAddress": 52540012}]}},
            r"interfaces\[0\].macAddress",
        ),
    ],
)  # fmt: skip
def test_bad_shapes_name_the_field(domain: dict[str, Any], message: str) -> None:
    with pytest.raises(VirtsyncError, match=message):
        VmSpec.from_body("default", "web", vm_body(domain))


def test_mac_pins_are_normalized_and_running_maps_to_strategy() -> None:
    body = vm_body(
        {"memory": {"guest": "1Gi"},
         "devices": {"interfaces": [{"name": "a", "macAddress": "02-AB-cd-00-00-01"}]}}
    )  # fmt: skip
    del body["spec"]["runStrategy"]
    body["spec"]["running"] = True
    vm = VmSpec.from_body("default", "web", body)
    assert vm.interfaces[0].mac == "02:ab:cd:00:00:01"
    assert vm.run_strategy == "Always"
