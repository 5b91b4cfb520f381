"""Guest memory and the balloon device."""

from __future__ import annotations

from lxml import etree

from node.domain.inputs import DomainInputs
from node.domain.xml import child, sub


def configure_memory(inp: DomainInputs, dom: etree._Element) -> None:
    kib = str(inp.vm.memory_kib)
    sub(dom, "memory", {"unit": "KiB"}, kib)
    sub(dom, "currentMemory", {"unit": "KiB"}, kib)
    # KubeVirt attaches a virtio balloon by default; it lets the host read guest memory stats.
    sub(child(dom, "devices"), "memballoon", {"model": "virtio"})
