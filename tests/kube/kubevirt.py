"""KubeVirt's admission and `subresources.kubevirt.io` verbs, as the Kubernetes API model
imitates them.

MODEL (see README.md) of:
- defaulting on VirtualMachine admission (KubeVirt's mutating webhook + KubeMacPool):
  `domain.firmware.uuid` and `domain.firmware.serial` when absent, `domain.machine.type`
  `q35` when absent, and a `macAddress` per interface from the model's MAC pool. On an
  update the previous values are kept when the new object omits them (KubeMacPool keeps
  an interface's MAC by interface name; the model does the same for uuid and serial).
  Defaults are attributed to the request's field manager, as Kubernetes attributes
  mutating admission.
- `PUT .../virtualmachines/<name>/start|stop|restart` with KubeVirt's run-strategy
  table: Always: stop → Halted, restart keeps Always; RerunOnFailure: stop → Halted;
  Manual: start/stop/restart act on the VMI only (a state change request the
  controller serves); Halted: start → Always. Verbs that make no sense ("VM is already
  running", "VM is not running", restart of a Halted VM) answer 409 Conflict.
"""

from __future__ import annotations

import copy
import random
import uuid
from typing import Any

from .api import Api, Options
from .errors import ApiError, not_found
from .resources import ResourceType, by_kind
from .store import Store

JSON = dict[str, Any]
VM = by_kind("kubevirt.io/v1", "VirtualMachine")
VMI = by_kind("kubevirt.io/v1", "VirtualMachineInstance")
VMIM = by_kind("kubevirt.io/v1", "VirtualMachineInstanceMigration")
RUNNING_STRATEGIES = ("Always", "RerunOnFailure", "Once")


def run_strategy(vm: JSON) -> str:
    spec = vm.get("spec", {})
    if "runStrategy" in spec:
        return str(spec["runStrategy"])
    if "running" in spec:
        return "Always" if spec["running"] else "Halted"
    return "Halted"


def _template_spec(vm: JSON) -> JSON:
    spec: JSON = vm.setdefault("spec", {}).setdefault("template", {}).setdefault("spec", {})
    return spec


class Defaulter:
    """The VM mutating webhook + KubeMacPool: seeded so runs are reproducible."""

    def __init__(self, seed: int = 12) -> None:
        self.random = random.Random(seed)
        self.next_mac = 1

    def _mac(self) -> str:
        value = self.next_mac
        self.next_mac += 1
        return "02:00:00:" + ":".join(f"{(value >> s) & 0xFF:02x}" for s in (16, 8, 0))

    def __call__(self, rtype: ResourceType, old: JSON | None, new: JSON) -> None:
        if rtype != VM:
            return
        domain = new.get("spec", {}).get("template", {}).get("spec", {}).get("domain")
        if not isinstance(domain, dict):
            return  # nothing to default; validation reports the missing template
        old_spec = _template_spec(copy.deepcopy(old)) if old else {}
        old_domain = old_spec.get("domain", {})
        firmware = domain.setdefault("firmware", {})
        old_firmware = old_domain.get("firmware", {})
        if "uuid" not in firmware:
            firmware["uuid"] = old_firmware.get("uuid") or str(
                uuid.UUID(int=self.random.getrandbits(128), version=4))
        if "serial" not in firmware:
            firmware["serial"] = old_firmware.get("serial") or str(
                uuid.UUID(int=self.random.getrandbits(128), version=4))
        domain.setdefault("machine", {}).setdefault("type", "q35")
        old_macs = {i.get("name"): i.get("macAddress")
                    for i in old_domain.get("devices", {}).get("interfaces", [])}
        for iface in domain.get("devices", {}).get("interfaces", []):
            if "macAddress" not in iface:
                iface["macAddress"] = old_macs.get(iface.get("name")) or self._mac()


def migration_admission(store: Store) -> Any:
    """KubeVirt's migration-create validator: the VMI must exist, run and be migratable."""
    def validate(rtype: ResourceType, obj: JSON) -> list[tuple[str, str]]:
        if rtype != VMIM or obj.get("metadata", {}).get("resourceVersion"):
            return []
        name = obj.get("spec", {}).get("vmiName", "")
        vmi = store.read(VMI, obj["metadata"].get("namespace"), name)
        if vmi is None or vmi.get("status", {}).get("phase") != "Running":
            return [("spec.vmiName", f"Invalid value: \"{name}\": the VMI is not running")]
        for cond in vmi.get("status", {}).get("conditions", []):
            if cond["type"] == "LiveMigratable" and cond["status"] != "True":
                return [("spec.vmiName", f"Cannot migrate VMI, Reason: {cond.get('reason')}, "
                                         f"Message: {cond.get('message')}")]
        return []
    return validate


# spec.instancetype / spec.preference: field → (default kind, namespaced kind, cluster kind)
REFERENCES = {
    "instancetype": ("VirtualMachineClusterInstancetype", "VirtualMachineInstancetype",
                     "VirtualMachineClusterInstancetype"),
    "preference": ("VirtualMachineClusterPreference", "VirtualMachinePreference",
                   "VirtualMachineClusterPreference"),
}


def referenced(vm: JSON, field: str) -> tuple[ResourceType, str] | None:
    """The instancetype or preference a VM names: (its type, name); kinds match
    case-insensitively and default to the cluster-scoped kind, as in KubeVirt."""
    matcher = vm.get("spec", {}).get(field)
    if not isinstance(matcher, dict) or not matcher.get("name"):
        return None
    default, namespaced, cluster = REFERENCES[field]
    kind = {k.lower(): k for k in (namespaced, cluster)}.get(
        str(matcher.get("kind") or default).lower(), default)
    return by_kind("instancetype.kubevirt.io/v1beta1", kind), str(matcher["name"])


def reference_admission(store: Store) -> Any:
    """KubeVirt's VM validator: a named instancetype or preference must exist (so they
    are applied before the VMs that use them)."""
    def validate(rtype: ResourceType, obj: JSON) -> list[tuple[str, str]]:
        if rtype != VM:
            return []
        causes = []
        for field in REFERENCES:
            ref = referenced(obj, field)
            if ref is None:
                continue
            target, name = ref
            namespace = obj["metadata"].get("namespace") if target.namespaced else None
            if store.read(target, namespace, name) is None:
                causes.append((f"spec.{field}.name",
                               f'Failure to find {field}: {target.plural}.{target.group} '
                               f'"{name}" not found'))
        return causes
    return validate


def _conflict(message: str) -> ApiError:
    return ApiError(409, "Conflict", message)


class Subresources:
    """`subresources.kubevirt.io/v1` start/stop/restart on VirtualMachines."""

    def __init__(self, api: Api) -> None:
        self.api = api

    def __call__(self, verb: str, namespace: str, name: str, body: Any,
                 opts: Options) -> None:
        store = self.api.store
        with store.lock:
            vm = store.read(VM, namespace, name)
            if vm is None:
                raise not_found("virtualmachines", "kubevirt.io", name)
            vmi = store.read(VMI, namespace, name)
            body = body if isinstance(body, dict) else {}
            if body.get("dryRun") == ["All"]:
                opts.dry_run = True
            action = {"start": self._start, "stop": self._stop, "restart": self._restart}.get(
                verb)
            if action is None:
                raise ApiError(404, "NotFound", f"unknown subresource {verb}")
            action(vm, vmi, body, opts)

    def _patch_vm(self, vm: JSON, patch: JSON, opts: Options) -> None:
        import json
        meta = vm["metadata"]
        self.api.patch(VM, meta["namespace"], meta["name"], json.dumps(patch).encode(),
                       "application/merge-patch+json",
                       Options(dry_run=opts.dry_run, field_manager="virt-api"))

    def _request(self, vm: JSON, actions: list[str], opts: Options) -> None:
        """Queue state change requests (what virt-api does for Manual), served by the
        controller."""
        if opts.dry_run:
            return
        status = vm.setdefault("status", {})
        status["stateChangeRequests"] = [{"action": a} for a in actions]
        self.api.store.write(VM, vm, "MODIFIED")

    def _start(self, vm: JSON, vmi: JSON | None, body: JSON, opts: Options) -> None:
        strategy = run_strategy(vm)
        if strategy == "Halted":
            self._patch_vm(vm, {"spec": {"runStrategy": "Always", "running": None}}, opts)
        elif strategy == "Manual":
            if vmi is not None:
                raise _conflict("VM is already running")
            self._request(vm, ["Start"], opts)
        else:
            raise _conflict(f"VM is already running (runStrategy {strategy})")

    def _stop(self, vm: JSON, vmi: JSON | None, body: JSON, opts: Options) -> None:
        strategy = run_strategy(vm)
        if vmi is None:
            raise _conflict("VM is not running")
        if "gracePeriod" in body and not opts.dry_run:
            # KubeVirt patches the VMI's terminationGracePeriodSeconds before stopping.
            vmi.setdefault("spec", {})["terminationGracePeriodSeconds"] = body["gracePeriod"]
            self.api.store.write(VMI, vmi, "MODIFIED")
        if strategy in ("Manual", "Halted"):
            self._request(vm, ["Stop"], opts)
        else:
            self._patch_vm(vm, {"spec": {"runStrategy": "Halted", "running": None}}, opts)

    def _restart(self, vm: JSON, vmi: JSON | None, body: JSON, opts: Options) -> None:
        strategy = run_strategy(vm)
        if strategy == "Halted":
            raise _conflict("RunStrategy Halted does not support manual restart requests")
        if vmi is None and strategy != "Manual":
            raise _conflict("VM is not running")
        self._request(vm, ["Stop", "Start"], opts)
