"""Domain type, name, firmware UUID, description, owner metadata, clock, lifecycle."""

from __future__ import annotations

from lxml import etree

from node.domain.inputs import DomainInputs
from node.domain.xml import sub
from node.identity.metadata import owner_element


def configure_general(inp: DomainInputs, dom: etree._Element) -> None:
    dom.set("type", inp.node.domain_type)
    sub(dom, "name", text=inp.name)
    # The firmware UUID is the domain UUID: libvirt exposes it as the SMBIOS system UUID.
    sub(dom, "uuid", text=inp.identity.uuid)
    sub(
        dom,
        "description",
        text=f"Managed by virtsync from git ({inp.vm.namespace}/{inp.vm.name}); "
        "changes made here are overwritten.",
    )


def configure_metadata(inp: DomainInputs, dom: etree._Element) -> None:
    sub(dom, "metadata").append(owner_element(inp.metadata))


def configure_lifecycle(inp: DomainInputs, dom: etree._Element) -> None:
    sub(dom, "clock", {"offset": "utc"})
    # A guest that powers off stays off: the run strategy, not libvirt, decides restarts.
    sub(dom, "on_poweroff", text="destroy")
    sub(dom, "on_reboot", text="restart")
    sub(dom, "on_crash", text="destroy")
