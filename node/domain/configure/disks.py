"""Disks and cdroms (including the cloud-init NoCloud seed, which arrives as a read-only
raw cdrom), their buses and target names, serials, boot order, and the SCSI controller."""

from __future__ import annotations

from lxml import etree

from node.domain.inputs import DomainInputs
from node.domain.model import ResolvedDisk
from node.domain.xml import ALIAS, child, sub
from reconciler.core.model import VirtsyncError

_PREFIX = {"virtio": "vd", "sata": "sd", "scsi": "sd", "usb": "sd"}


def target_suffix(index: int) -> str:
    """0 → 'a', 25 → 'z', 26 → 'aa' (libvirt's disk naming)."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(ord("a") + rem) + out
    return out


def target_names(disks: tuple[ResolvedDisk, ...]) -> dict[str, str]:
    """Disk name → target dev, numbered per prefix in spec order (vda, vdb, sda, ...)."""
    counters: dict[str, int] = {}
    names: dict[str, str] = {}
    for disk in disks:
        prefix = _PREFIX[disk.bus]
        n = counters.get(prefix, 0)
        counters[prefix] = n + 1
        names[disk.name] = prefix + target_suffix(n)
    return names


def configure_disks(inp: DomainInputs, dom: etree._Element) -> None:
    seen: set[str] = set()
    for disk in inp.disks:
        if disk.name in seen:
            raise VirtsyncError(f"{inp.vm.namespace}/{inp.vm.name}: disk {disk.name!r} twice")
        seen.add(disk.name)
        if disk.bus not in _PREFIX:
            raise VirtsyncError(f"disk {disk.name!r}: unsupported bus {disk.bus!r}")
    devices = child(dom, "devices")
    targets = target_names(inp.disks)
    for disk in inp.disks:
        el = sub(devices, "disk", {"type": "file", "device": disk.device})
        sub(el, "driver", {"name": "qemu", "type": disk.format})
        sub(el, "source", {"file": disk.path})
        sub(el, "target", {"dev": targets[disk.name], "bus": disk.bus})
        if disk.serial:
            sub(el, "serial", text=disk.serial)
        if disk.boot_order is not None:
            sub(el, "boot", {"order": str(disk.boot_order)})
        if disk.readonly or disk.device == "cdrom":
            sub(el, "readonly")
        if disk.shareable:
            sub(el, "shareable")
        # The KubeVirt disk name, so observe() can map libvirt disks back to the spec.
        if ALIAS.match(disk.name):
            sub(el, "alias", {"name": "ua-" + disk.name})
    if any(d.bus == "scsi" for d in inp.disks):
        # Without it libvirt picks an LSI controller that QEMU builds often lack.
        sub(devices, "controller", {"type": "scsi", "index": "0", "model": "virtio-scsi"})
