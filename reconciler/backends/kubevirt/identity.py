"""The identity KubeVirt fills in on a VM: firmware UUID and serial. Pure.

`virtsync pin --from-cluster` writes them into git; a replace (rename, immutable
field) carries them to the new object when git pins none (rule 17).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from reconciler.core.model import JSON, get_path

FIRMWARE = ("spec", "template", "spec", "domain", "firmware")


def firmware_identity(vm: Mapping[str, JSON]) -> tuple[str, str]:
    """(uuid, serial) as the live VM holds them ('' where unset)."""
    firmware = get_path(vm, FIRMWARE)
    if not isinstance(firmware, Mapping):
        return "", ""
    uuid, serial = firmware.get("uuid"), firmware.get("serial")
    return (uuid if isinstance(uuid, str) else "", serial if isinstance(serial, str) else "")


def with_identity(body: Mapping[str, JSON], previous: Mapping[str, JSON]) -> dict[str, JSON]:
    """`body` with the previous VM's firmware UUID and serial where `body` sets none."""
    uuid, serial = firmware_identity(previous)
    out: dict[str, JSON] = copy.deepcopy(dict(body))
    node: dict[str, JSON] = out
    for part in FIRMWARE:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    for field, value in (("uuid", uuid), ("serial", serial)):
        if value and not node.get(field):
            node[field] = value
    return out


def interface_macs(vm: Mapping[str, JSON]) -> dict[str, str]:
    """Interface name → MAC, as KubeMacPool (or git) set them on the live VM."""
    interfaces = get_path(vm, ("spec", "template", "spec", "domain", "devices", "interfaces"))
    out: dict[str, str] = {}
    for i in interfaces if isinstance(interfaces, list) else []:
        if isinstance(i, Mapping) and isinstance(i.get("name"), str) \
                and isinstance(i.get("macAddress"), str):
            out[str(i["name"])] = str(i["macAddress"])
    return out
