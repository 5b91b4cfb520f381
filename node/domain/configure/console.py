"""Serial console (a pty, logged to a file per domain) and graphics (none by default)."""

from __future__ import annotations

import posixpath

from lxml import etree

from node.domain.inputs import DomainInputs
from node.domain.xml import child, sub


def console_log_path(inp: DomainInputs) -> str:
    return posixpath.join(inp.node.console_log_dir, f"{inp.name}.log")


def configure_serial_console(inp: DomainInputs, dom: etree._Element) -> None:
    if not inp.vm.serial_console:
        return
    # A pty keeps `virsh console` usable; <log> also appends everything to a file,
    # which survives the domain and is what status/debugging read.
    serial = sub(child(dom, "devices"), "serial", {"type": "pty"})
    sub(serial, "log", {"file": console_log_path(inp), "append": "on"})
    sub(serial, "target", {"port": "0"})


def configure_graphics(inp: DomainInputs, dom: etree._Element) -> None:
    if not inp.vm.graphics:
        return
    devices = child(dom, "devices")
    graphics = sub(devices, "graphics", {"type": "vnc", "port": "-1", "autoport": "yes"})
    sub(graphics, "listen", {"type": "address", "address": "127.0.0.1"})
    sub(sub(devices, "video"), "model", {"type": "virtio", "heads": "1"})
