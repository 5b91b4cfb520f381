"""Apply a VM's instancetype and preference: VM body + referenced objects → effective body.

Pure. `expand(vm, refs)` returns a deep copy of the VM body in which

- the instancetype (`spec.instancetype`, kind VirtualMachineClusterInstancetype by
  default, or the namespaced VirtualMachineInstancetype in the VM's namespace) sets
  guest vCPUs (spread over sockets/cores/threads by the preference's
  `preferredCPUTopology`, default sockets, like KubeVirt), CPU model, guest memory and
  nodeSelector. A VM that sets any of these itself conflicts, as in KubeVirt;
- the preference (`spec.preference`, kind VirtualMachineClusterPreference by default)
  fills *defaults only*: disk/cdrom/lun bus, interface model, serial console and
  graphics autoattach, BIOS/EFI and secure boot, machine type and the termination grace
  period. A value written in the VM always wins.
- preference `requirements` (minimum vCPUs / memory) are checked on the result.

Errors name the VM field that is wrong (spec.instancetype.name, ...).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from reconciler.core.model import JSON, JSONPath, Manifest, ObjectKey, VirtsyncError, format_path
from reconciler.core.quantity import byte_size
from reconciler.core.vmspec import VmSpec

CLUSTER_INSTANCETYPE = "VirtualMachineClusterInstancetype"
INSTANCETYPE = "VirtualMachineInstancetype"
CLUSTER_PREFERENCE = "VirtualMachineClusterPreference"
PREFERENCE = "VirtualMachinePreference"
_KINDS = {k.lower(): k for k in (CLUSTER_INSTANCETYPE, INSTANCETYPE, CLUSTER_PREFERENCE,
                                 PREFERENCE)}
_TMPL: JSONPath = ("spec", "template", "spec")
_DOMAIN: JSONPath = (*_TMPL, "domain")


def _err(path: JSONPath, message: str) -> VirtsyncError:
    return VirtsyncError(f"{format_path(path)}: {message}")


def _child(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """parent[key] as a dict, created when missing."""
    value = parent.get(key)
    if value is None:
        value = parent[key] = {}
    if not isinstance(value, dict):
        raise VirtsyncError(f"{key}: expected a mapping")
    return value


def _get(data: JSON, *keys: str | int) -> JSON:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _resolve(
    vm: Manifest, field: str, default_kind: str, namespaced_kind: str,
    refs: Mapping[ObjectKey, Manifest],
) -> Mapping[str, JSON] | None:
    ref = VmSpec.of(vm).reference(field)
    if ref is None:
        return None
    if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str) or not ref["name"]:
        raise _err(("spec", field, "name"), "required")
    raw_kind = ref.get("kind") or default_kind
    kind = _KINDS.get(str(raw_kind).lower())
    if kind not in (default_kind, namespaced_kind):
        raise _err(("spec", field, "kind"), f"unsupported kind {raw_kind!r}")
    key = ObjectKey(kind, vm.namespace if kind == namespaced_kind else "", ref["name"])
    found = refs.get(key)
    if found is None:
        where = f" in namespace {vm.namespace}" if kind == namespaced_kind else ""
        raise _err(("spec", field, "name"), f"{kind} {ref['name']!r} not found{where}")
    spec = found.body.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def spread_vcpus(vcpus: int, topology: str) -> dict[str, int]:
    """KubeVirt's preferredCPUTopology: all vCPUs as sockets (default), cores or threads;
    `spread` puts them on sockets and cores 1:2 when even, else like sockets."""
    key = {
        "cores": "cores", "preferCores": "cores",
        "threads": "threads", "preferThreads": "threads",
    }.get(topology)
    if key is not None:
        return {"sockets": 1, "cores": 1, "threads": 1} | {key: vcpus}
    if topology in ("spread", "preferSpread") and vcpus % 2 == 0 and vcpus >= 2:
        return {"sockets": vcpus // 2, "cores": 2, "threads": 1}
    return {"sockets": vcpus, "cores": 1, "threads": 1}


def _apply_instancetype(
    body: dict[str, Any], it: Mapping[str, JSON], pref: Mapping[str, JSON] | None
) -> None:
    tmpl = _child(_child(_child(body, "spec"), "template"), "spec")
    domain = _child(tmpl, "domain")
    cpu = _child(domain, "cpu")
    conflicts: list[JSONPath] = [
        (*_DOMAIN, "cpu", f) for f in ("sockets", "cores", "threads", "model") if f in cpu
    ]
    if _get(domain, "memory", "guest") is not None:
        conflicts.append((*_DOMAIN, "memory", "guest"))
    if _get(domain, "resources", "requests", "memory") is not None:
        conflicts.append((*_DOMAIN, "resources", "requests", "memory"))
    if tmpl.get("nodeSelector") and it.get("nodeSelector"):
        conflicts.append((*_TMPL, "nodeSelector"))
    if conflicts:
        others = ", ".join(format_path(p) for p in conflicts[1:])
        raise _err(
            conflicts[0],
            "conflicts with the selected instancetype" + (f" (also {others})" if others else ""),
        )
    guest = _get(it, "cpu", "guest")
    if isinstance(guest, bool) or not isinstance(guest, int) or guest < 1:
        raise VirtsyncError("instancetype spec.cpu.guest: expected a positive integer")
    topology = str(_get(pref, "cpu", "preferredCPUTopology") or "sockets")
    cpu.update(spread_vcpus(guest, topology))
    model = _get(it, "cpu", "model")
    if isinstance(model, str) and model:
        cpu["model"] = model
    memory = _get(it, "memory", "guest")
    if memory is None:
        raise VirtsyncError("instancetype spec.memory.guest: required")
    _child(domain, "memory")["guest"] = memory
    selector = it.get("nodeSelector")
    if isinstance(selector, Mapping) and selector:
        tmpl["nodeSelector"] = dict(selector)


def _default(target: dict[str, Any], key: str, value: JSON) -> None:
    if value is not None and target.get(key) is None:
        target[key] = copy.deepcopy(value)


def _apply_preference(body: dict[str, Any], pref: Mapping[str, JSON]) -> None:
    tmpl = _child(_child(_child(body, "spec"), "template"), "spec")
    domain = _child(tmpl, "domain")
    devices = _child(domain, "devices")
    dev = pref.get("devices") if isinstance(pref.get("devices"), Mapping) else {}
    assert isinstance(dev, Mapping)
    buses = {
        "disk": dev.get("preferredDiskBus"),
        "cdrom": dev.get("preferredCdromBus"),
        "lun": dev.get("preferredLunBus"),
    }
    for disk in devices.get("disks") or []:
        if not isinstance(disk, dict):
            continue
        kind = next((k for k in ("cdrom", "lun", "disk") if k in disk), "disk")
        if buses[kind] is not None:
            target = disk.get(kind)
            if target is None:
                target = disk[kind] = {}
            if isinstance(target, dict):
                _default(target, "bus", buses[kind])
    for iface in devices.get("interfaces") or []:
        if isinstance(iface, dict):
            _default(iface, "model", dev.get("preferredInterfaceModel"))
    _default(devices, "autoattachSerialConsole", dev.get("preferredAutoattachSerialConsole"))
    _default(devices, "autoattachGraphicsDevice", dev.get("preferredAutoattachGraphicsDevice"))
    fw_pref = pref.get("firmware") if isinstance(pref.get("firmware"), Mapping) else {}
    assert isinstance(fw_pref, Mapping)
    if _get(domain, "firmware", "bootloader") is None:
        if fw_pref.get("preferredUseEfi") or fw_pref.get("preferredEfi") is not None:
            efi: dict[str, Any] = {}
            secure = fw_pref.get("preferredUseSecureBoot")
            if secure is not None:
                efi["secureBoot"] = bool(secure)
            _child(_child(domain, "firmware"), "bootloader")["efi"] = efi
        elif fw_pref.get("preferredUseBios"):
            _child(_child(domain, "firmware"), "bootloader")["bios"] = {}
    machine = _get(pref, "machine", "preferredMachineType")
    if machine is not None and _get(domain, "machine", "type") is None:
        _child(domain, "machine")["type"] = machine
    _default(tmpl, "terminationGracePeriodSeconds",
             pref.get("preferredTerminationGracePeriodSeconds"))


def _check_requirements(body: Mapping[str, JSON], pref: Mapping[str, JSON]) -> None:
    cpu = _get(body, *_DOMAIN, "cpu")
    vcpus = 1
    if isinstance(cpu, Mapping):
        for f in ("sockets", "cores", "threads"):
            v = cpu.get(f)
            vcpus *= v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 1
    need_cpu = _get(pref, "requirements", "cpu", "guest")
    if isinstance(need_cpu, int) and vcpus < need_cpu:
        raise _err((*_DOMAIN, "cpu"),
                   f"the preference requires at least {need_cpu} vCPUs, the VM has {vcpus}")
    need_mem = _get(pref, "requirements", "memory", "guest")
    have = _get(body, *_DOMAIN, "memory", "guest")
    have_path: JSONPath = (*_DOMAIN, "memory", "guest")
    if have is None:
        have = _get(body, *_DOMAIN, "resources", "requests", "memory")
        have_path = (*_DOMAIN, "resources", "requests", "memory")
    if need_mem is not None and have is not None:
        need_bytes = byte_size(need_mem, ("preference", "requirements", "memory", "guest"))
        if byte_size(have, have_path) < need_bytes:
            raise _err(have_path, f"the preference requires at least {need_mem} of memory")


def expand(vm: Manifest, refs: Mapping[ObjectKey, Manifest]) -> dict[str, Any]:
    """The VM body with its instancetype and preference applied (a new dict)."""
    body: dict[str, Any] = copy.deepcopy(dict(vm.body))
    it = _resolve(vm, "instancetype", CLUSTER_INSTANCETYPE, INSTANCETYPE, refs)
    pref = _resolve(vm, "preference", CLUSTER_PREFERENCE, PREFERENCE, refs)
    if it is not None:
        _apply_instancetype(body, it, pref)
    if pref is not None:
        _apply_preference(body, pref)
        _check_requirements(body, pref)
    return body
