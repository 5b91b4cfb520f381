"""Golden XML for every configurator and for whole domains; libvirt must accept each
golden domain (test:///default always, qemu:///system in the real lane)."""

from __future__ import annotations

import dataclasses
from typing import Any

import libvirt
import pytest
from domain_cases import CASES, EFI_KVM, FULL, KERNEL, MINIMAL, Case
from golden_files import assert_no_orphans
from golden_util import GOLDEN_DIR, assert_golden
from lxml import etree

from node.domain.builder import CONFIGURATORS, build_from_inputs, to_xml
from node.domain.configure.console import configure_serial_console
from node.domain.configure.cpu import configure_cpu
from node.domain.configure.firmware import configure_features, configure_os
from node.identity.metadata import parse_owner_metadata

# (configurator, case): every configurator on the richest case, plus the variants
# that take other branches.
CONFIG_CASES = [(c, FULL) for c in CONFIGURATORS] + [
    (configure_os, KERNEL),
    (configure_os, EFI_KVM),
    (configure_features, EFI_KVM),
    (configure_cpu, EFI_KVM),
    (configure_serial_console, EFI_KVM),  # autoattachSerialConsole: false → nothing
]


def _conf_id(item: tuple[Any, Case]) -> str:
    return f"{item[0].__name__.removeprefix('configure_')}-{item[1].name}"


@pytest.mark.parametrize("item", CONFIG_CASES, ids=_conf_id)
def test_configurator_golden(item: tuple[Any, Case]) -> None:
    configure, case = item
    dom = etree.Element("domain")
    configure(case.inputs(), dom)
    assert_golden(f"conf-{_conf_id(item)}.xml", to_xml(dom))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_domain_golden(case: Case) -> None:
    xml = to_xml(build_from_inputs(case.inputs()))
    assert_golden(f"domain-{case.name}.xml", xml)
    # Pure: building again gives the same bytes.
    assert to_xml(build_from_inputs(case.inputs())) == xml


def test_no_orphaned_goldens() -> None:
    assert_no_orphans(GOLDEN_DIR, [f"conf-{_conf_id(item)}.xml" for item in CONFIG_CASES]
                      + [f"domain-{case.name}.xml" for case in CASES])


def _golden_xml(case: Case) -> str:
    return (GOLDEN_DIR / f"domain-{case.name}.xml").read_text(encoding="utf-8")


def _check_roundtrip(dom: Any, case: Case) -> None:
    """What libvirt kept of the identity and owner marker."""
    live = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
    assert dom.UUIDString() == case.identity.uuid
    assert live.findtext("sysinfo/system/entry[@name='serial']") == case.identity.serial
    macs = [m.get("address") for m in live.iterfind("devices/interface/mac")]
    assert macs == [i.mac for i in case.interfaces]
    serials = [d.findtext("serial") for d in live.iterfind("devices/disk")]
    assert serials == [d.serial for d in case.disks]
    meta = parse_owner_metadata(dom.XMLDesc(0))
    assert meta == case.metadata


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_golden_domain_accepted_by_test_driver(test_conn: Any, case: Case) -> None:
    dom = test_conn.defineXML(_golden_xml(case))
    _check_roundtrip(dom, case)
    dom.create()
    assert dom.isActive()
    dom.destroy()
    dom.undefine()
    assert case.identity.uuid not in [d.UUIDString() for d in test_conn.listAllDomains()]


# The real QEMU driver checks machine types, devices and firmware against the installed
# QEMU. KVM does not work on this machine kind, so the kvm case is defined as TCG.
@pytest.mark.real
@pytest.mark.parametrize("case", [MINIMAL, FULL, KERNEL, EFI_KVM], ids=lambda c: c.name)
def test_golden_domain_accepted_by_qemu(system_conn: Any, case: Case) -> None:
    if case.node.domain_type != "qemu":
        case = dataclasses.replace(case, node=dataclasses.replace(case.node, domain_type="qemu"))
    xml = to_xml(build_from_inputs(case.inputs()))
    stale = [d for d in system_conn.listAllDomains() if d.UUIDString() == case.identity.uuid]
    for d in stale:  # left over by an interrupted run of this very test
        d.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
    dom = system_conn.defineXML(xml)
    try:
        _check_roundtrip(dom, case)
    finally:
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
