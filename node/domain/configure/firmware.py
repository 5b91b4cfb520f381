"""Firmware: SMBIOS sysinfo (UUID + serial), machine type, BIOS/EFI, direct kernel
boot, and the platform features ACPI shutdown needs."""

from __future__ import annotations

from lxml import etree

from node.domain.inputs import DomainInputs
from node.domain.xml import sub

SMBIOS_MANUFACTURER = "virtsync"
SMBIOS_PRODUCT = "virtsync VM"


def configure_sysinfo(inp: DomainInputs, dom: etree._Element) -> None:
    sysinfo = sub(dom, "sysinfo", {"type": "smbios"})
    system = sub(sysinfo, "system")
    sub(system, "entry", {"name": "manufacturer"}, SMBIOS_MANUFACTURER)
    sub(system, "entry", {"name": "product"}, SMBIOS_PRODUCT)
    sub(system, "entry", {"name": "serial"}, inp.identity.serial)
    # libvirt requires the SMBIOS uuid to equal the domain uuid.
    sub(system, "entry", {"name": "uuid"}, inp.identity.uuid)
    sub(system, "entry", {"name": "family"}, SMBIOS_MANUFACTURER)


def configure_os(inp: DomainInputs, dom: etree._Element) -> None:
    fw = inp.vm.firmware
    os_el = sub(dom, "os")
    if fw.bootloader == "efi" and inp.kernel is None:
        os_el.set("firmware", "efi")
        if fw.secure_boot:
            sub(os_el, "firmware").append(
                etree.Element("feature", enabled="yes", name="secure-boot")
            )
            sub(os_el, "loader", {"secure": "yes"})
    machine = inp.vm.machine_type or inp.node.machine
    sub(os_el, "type", {"arch": inp.node.arch, "machine": machine}, "hvm")
    if inp.kernel is not None:
        sub(os_el, "kernel", text=inp.kernel.kernel)
        if inp.kernel.initrd:
            sub(os_el, "initrd", text=inp.kernel.initrd)
        if inp.kernel.cmdline:
            sub(os_el, "cmdline", text=inp.kernel.cmdline)
    # Expose the <sysinfo> block (uuid, serial) to the guest as SMBIOS tables.
    sub(os_el, "smbios", {"mode": "sysinfo"})


def configure_features(inp: DomainInputs, dom: etree._Element) -> None:
    features = sub(dom, "features")
    sub(features, "acpi")  # graceful shutdown is an ACPI power-button press
    sub(features, "apic")
    if inp.vm.firmware.bootloader == "efi" and inp.vm.firmware.secure_boot and not inp.kernel:
        sub(features, "smm", {"state": "on"})  # secure boot needs SMM on q35
