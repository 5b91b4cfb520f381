"""Network interfaces: where each plugs in, its fixed MAC, model and PXE boot order."""

from __future__ import annotations

from lxml import etree

from node.domain.inputs import DomainInputs
from node.domain.model import Bridge, LibvirtNetwork, ResolvedInterface, UserNet
from node.domain.xml import ALIAS, child, sub
from reconciler.core.model import VirtsyncError


def _source(iface: ResolvedInterface, devices: etree._Element) -> etree._Element:
    src = iface.source
    if isinstance(src, UserNet):
        return sub(devices, "interface", {"type": "user"})
    if isinstance(src, LibvirtNetwork):
        el = sub(devices, "interface", {"type": "network"})
        sub(el, "source", {"network": src.name})
        return el
    if isinstance(src, Bridge):
        el = sub(devices, "interface", {"type": "bridge"})
        sub(el, "source", {"bridge": src.name})
        return el
    raise VirtsyncError(f"interface {iface.name!r}: unsupported source {src!r}")


def configure_interfaces(inp: DomainInputs, dom: etree._Element) -> None:
    macs = [i.mac.lower() for i in inp.interfaces]
    if len(set(macs)) != len(macs):
        raise VirtsyncError(f"{inp.vm.namespace}/{inp.vm.name}: two interfaces share a MAC")
    devices = child(dom, "devices")
    for iface in inp.interfaces:
        # type/source first, then mac: libvirt's own element order.
        el = _source(iface, devices)
        el.insert(0, etree.Element("mac", address=iface.mac.lower()))
        sub(el, "model", {"type": iface.model})
        if iface.boot_order is not None:
            sub(el, "boot", {"order": str(iface.boot_order)})
        if ALIAS.match(iface.name):
            sub(el, "alias", {"name": "ua-" + iface.name})
