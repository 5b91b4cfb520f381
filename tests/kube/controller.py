"""A tiny simulation of KubeVirt's virt-controller for the Kubernetes API model.

MODEL (see README.md), driven explicitly or automatically:
- `settle()` runs reconcile steps until nothing changes (or max_steps); `step()` runs one.
- With `auto` (the default), after every HTTP request the VMs are settled fully and every
  migration advances ONE phase, so a client polling a migration sees each phase.
  `start_ticking(interval)` also steps in a background thread (for watch-only clients).

Per VirtualMachine: a run strategy that says running (Always, RerunOnFailure, Once;
Manual after a Start request) creates a VMI (phase Scheduling, VM `Starting`), next step
Running on `node-a` (VM `Running`, `ready: true`, Ready=True); Halted (or a Stop request)
deletes the VMI (VM `Stopped`). LiveMigratable is False when a volume's claim is not RWX
(a DataVolume whose accessModes lack ReadWriteMany, or any other PVC unless listed in
`rwx_claims`) or an interface uses `bridge` binding on the pod network. A template change
to a field that is not live-updatable while the VMI runs sets RestartRequired=True, until
a restart; live-updatable fields (cpu.sockets, memory.guest, nodeSelector, affinity,
tolerations, firmware.uuid) are copied into the VMI instead. `status.observedGeneration`
and `desiredGeneration` follow `metadata.generation`.

DataVolumes (CDI in one step): `Succeeded` with Bound/Ready conditions, or
`ImportInProgress` while `hold_datavolumes` is set; a VM whose DataVolumes have not
Succeeded waits (`Provisioning`, no VMI). `spec.dataVolumeTemplates` become DataVolumes
owned by the VM. Garbage collection: an object whose owners are all gone is deleted at
the next step (propagationPolicy=Orphan keeps dependents: Api.delete strips the refs).

Per VirtualMachineInstanceMigration: Pending → Scheduling → Scheduled → PreparingTarget →
TargetReady → Running → Succeeded, one phase per step; on success the VMI's
`status.nodeName` moves to the other model node and `status.migrationState` says so. Set
`fail_at` to a phase name to make migrations fail there (phase Failed).
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from .api import Api, Options
from .kubevirt import REFERENCES, RUNNING_STRATEGIES, VM, VMI, VMIM, referenced, run_strategy
from .managed import now
from .resources import by_kind

JSON = dict[str, Any]
DV = by_kind("cdi.kubevirt.io/v1beta1", "DataVolume")
NODES = ("node-a", "node-b")
MIGRATION_PHASES = ("Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady",
                    "Running", "Succeeded")
# Template paths (under spec.template.spec) KubeVirt's LiveUpdate rollout applies to a
# running VMI without RestartRequired (gitops-facts: vm.go syncRestartRequired).
LIVE_UPDATABLE = (("domain", "cpu", "sockets"), ("domain", "memory", "guest"),
                  ("nodeSelector",), ("affinity",), ("tolerations",),
                  ("domain", "firmware", "uuid"))


def _without(spec: JSON, paths: tuple[tuple[str, ...], ...]) -> JSON:
    out = copy.deepcopy(spec)
    for path in paths:
        node = out
        for key in path[:-1]:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return out


def _copy_paths(src: JSON, dst: JSON, paths: tuple[tuple[str, ...], ...]) -> None:
    for path in paths:
        value: Any = src
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            parent: Any = dst
            for key in path[:-1]:
                parent = parent.get(key) if isinstance(parent, dict) else None
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
            continue
        node = dst
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = copy.deepcopy(value)


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> JSON:
    cond: JSON = {"type": kind, "status": "True" if ok else "False",
                  "lastProbeTime": None, "lastTransitionTime": now()}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


class Controller:
    """virt-controller in miniature; every write goes through the store (rv, events)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.store = api.store
        self.auto = True
        self.hold_datavolumes = False
        self.fail_at: str | None = None
        self.rwx_claims: set[str] = set()
        self._restart_required: set[tuple[str, str]] = set()
        self._ticker: threading.Thread | None = None
        self._ticking = threading.Event()

    # ---- driving -----------------------------------------------------------------------
    def step(self) -> bool:
        """One pass over VMs and migrations; whether anything changed."""
        with self.store.lock:
            changed = self._vms_step()
            return self._migrations_step() or changed

    def settle(self, max_steps: int = 50) -> int:
        """Step until quiet; the number of steps that changed something."""
        for count in range(max_steps):
            if not self.step():
                return count
        return max_steps

    def after_request(self) -> None:
        if not self.auto:
            return
        with self.store.lock:
            for _ in range(20):
                if not self._vms_step():
                    break
            self._migrations_step()

    def start_ticking(self, interval: float = 0.05) -> None:
        def run() -> None:
            while not self._ticking.wait(interval):
                self.step()
        self._ticking.clear()
        self._ticker = threading.Thread(target=run, name="kube-model-controller", daemon=True)
        self._ticker.start()

    def stop_ticking(self) -> None:
        self._ticking.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None

    # ---- VMs ---------------------------------------------------------------------------
    def _vms_step(self) -> bool:
        changed = self._collect_garbage()
        for vm in self.store.all_of(VM, None):
            changed = self._data_volume_templates(vm) or changed
        for dv in self.store.all_of(DV, None):
            changed = self._sync_data_volume(dv) or changed
        for vm in self.store.all_of(VM, None):
            changed = self._sync_vm(vm) or changed
        return changed

    def _collect_garbage(self) -> bool:
        """Delete objects whose owners are all gone (Background/Foreground propagation;
        Orphan strips the references at delete time, see Api.delete)."""
        uids = {o["metadata"].get("uid") for o in self.store.objects.values()}
        changed = False
        for key, obj in list(self.store.objects.items()):
            refs = obj["metadata"].get("ownerReferences") or []
            if refs and not any(r.get("uid") in uids for r in refs):
                self.store.write(by_kind(key[0], key[1]), copy.deepcopy(obj), "DELETED")
                changed = True
        return changed

    def _data_volume_templates(self, vm: JSON) -> bool:
        """virt-controller creates the DataVolumes of `spec.dataVolumeTemplates`, owned by
        the VM (so deleting the VM deletes them, unless propagationPolicy=Orphan)."""
        meta = vm["metadata"]
        changed = False
        for template in vm["spec"].get("dataVolumeTemplates", []):
            name = template.get("metadata", {}).get("name")
            if not name or self.store.read(DV, meta["namespace"], name) is not None:
                continue
            body: JSON = {
                "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
                "metadata": {**copy.deepcopy(template.get("metadata", {})),
                             "namespace": meta["namespace"],
                             "ownerReferences": [_owner_ref(vm)]},
                "spec": copy.deepcopy(template.get("spec", {}))}
            self.api.create(DV, meta["namespace"], body, Options(field_manager="virt-controller"))
            changed = True
        return changed

    def _sync_data_volume(self, dv: JSON) -> bool:
        """CDI in one step: Succeeded (Bound, Ready), or ImportInProgress while
        `hold_datavolumes` is set."""
        if self.hold_datavolumes:
            status: JSON = {"phase": "ImportInProgress", "progress": "42.0%",
                            "conditions": [_condition("Bound", True),
                                           _condition("Ready", False, "TransferRunning"),
                                           _condition("Running", True)]}
        else:
            status = {"phase": "Succeeded", "progress": "100.0%",
                      "conditions": [_condition("Bound", True), _condition("Ready", True),
                                     _condition("Running", False, "Completed")]}
        status["conditions"] = _keep_transition_times(
            dv.get("status", {}).get("conditions", []), status["conditions"])
        if dv.get("status") == status:
            return False
        dv["status"] = status
        self.store.write(DV, dv, "MODIFIED")
        return True

    def _volumes_ready(self, vm: JSON) -> bool:
        """A VMI starts only when its DataVolumes have Succeeded (else `Provisioning`)."""
        namespace = vm["metadata"]["namespace"]
        for volume in vm["spec"].get("template", {}).get("spec", {}).get("volumes", []):
            name = volume.get("dataVolume", {}).get("name")
            if name:
                dv = self.store.read(DV, namespace, name)
                if dv is None or dv.get("status", {}).get("phase") != "Succeeded":
                    return False
        return True

    def _wants_running(self, vm: JSON, vmi: JSON | None) -> bool:
        strategy = run_strategy(vm)
        if strategy in RUNNING_STRATEGIES:
            return True
        if strategy == "Manual":
            return vmi is not None
        return False

    def _sync_vm(self, vm: JSON) -> bool:
        meta = vm["metadata"]
        key = (meta["namespace"], meta["name"])
        vmi = self.store.read(VMI, *key)
        ready = self._volumes_ready(vm)
        changed = False
        requests = [r.get("action") for r in vm.get("status", {}).get("stateChangeRequests", [])]
        if requests:
            if vmi is not None and requests[0] == "Stop":
                self.store.write(VMI, vmi, "DELETED")
                vmi = None
                self._restart_required.discard(key)
            remaining = requests[1:] if requests[0] == "Stop" else requests
            if remaining and remaining[0] == "Start" and vmi is None and ready:
                vmi = self._create_vmi(vm)
                remaining = remaining[1:]
            vm["status"]["stateChangeRequests"] = [{"action": a} for a in remaining]
            if not remaining:
                vm["status"].pop("stateChangeRequests")
            changed = True
        want = self._wants_running(vm, vmi)
        if want and vmi is None and ready:
            vmi = self._create_vmi(vm)
            changed = True
        elif not want and vmi is not None:
            self.store.write(VMI, vmi, "DELETED")
            self._restart_required.discard(key)
            vmi = None
            changed = True
        elif vmi is not None:
            changed = self._advance_vmi(vm, vmi) or changed
            vmi = self.store.read(VMI, *key)
        status = self._vm_status(vm, vmi, provisioning=want and not ready)
        if status != vm.get("status", {}):
            vm["status"] = status
            self.store.write(VM, vm, "MODIFIED")
            changed = True
        return changed

    def _create_vmi(self, vm: JSON) -> JSON:
        meta = vm["metadata"]
        template = vm["spec"].get("template", {})
        vmi: JSON = {
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                         "labels": copy.deepcopy(template.get("metadata", {}).get("labels", {})),
                         "uid": self.store.next_uid(), "creationTimestamp": now(),
                         "generation": 1,
                         "ownerReferences": [_owner_ref(vm)]},
            "spec": copy.deepcopy(template.get("spec", {})),
            "status": {"phase": "Scheduling"}}
        self._restart_required.discard((meta["namespace"], meta["name"]))
        return self.store.write(VMI, vmi, "ADDED")

    def _advance_vmi(self, vm: JSON, vmi: JSON) -> bool:
        status = vmi.setdefault("status", {})
        changed = False
        if status.get("phase") == "Scheduling":
            status.update({"phase": "Running", "nodeName": NODES[0]})
            changed = True
        key = (vm["metadata"]["namespace"], vm["metadata"]["name"])
        template = vm["spec"].get("template", {}).get("spec", {})
        if key not in self._restart_required:
            if _without(template, LIVE_UPDATABLE) != _without(vmi["spec"], LIVE_UPDATABLE):
                self._restart_required.add(key)  # nothing more propagates until restart
            else:
                live = copy.deepcopy(vmi["spec"])
                _copy_paths(template, live, LIVE_UPDATABLE)
                if live != vmi["spec"]:
                    vmi["spec"] = live
                    changed = True
        conditions = _keep_transition_times(status.get("conditions", []),
                                            self._vmi_conditions(vmi))
        if status.get("conditions") != conditions:
            status["conditions"] = conditions
            status["interfaces"] = [
                {"name": i.get("name"), "mac": i.get("macAddress")}
                for i in vmi["spec"].get("domain", {}).get("devices", {}).get("interfaces", [])]
            changed = True
        if changed:
            self.store.write(VMI, vmi, "MODIFIED")
        return changed

    def _migratable(self, vmi: JSON) -> tuple[bool, str, str]:
        spec = vmi.get("spec", {})
        namespace = vmi["metadata"]["namespace"]
        for volume in spec.get("volumes", []):
            claim = (volume.get("persistentVolumeClaim", {}).get("claimName")
                     or volume.get("dataVolume", {}).get("name"))
            if claim and not self._rwx(namespace, claim):
                return (False, "DisksNotLiveMigratable",
                        f"cannot migrate VMI: PVC {claim} is not shared, live migration "
                        "requires that all PVCs must be shared (using ReadWriteMany access "
                        "mode)")
        pod_networks = {n.get("name") for n in spec.get("networks", []) if "pod" in n}
        for iface in spec.get("domain", {}).get("devices", {}).get("interfaces", []):
            if "bridge" in iface and iface.get("name") in pod_networks:
                return (False, "InterfaceNotLiveMigratable",
                        "cannot migrate VMI which does not use masquerade, bridge with "
                        "kubevirt.io/allow-pod-bridge-network-live-migration annotation or "
                        "passt network binding to connect to the pod network")
        return True, "", ""

    def _rwx(self, namespace: str, claim: str) -> bool:
        if claim in self.rwx_claims:
            return True
        dv = self.store.read(DV, namespace, claim)
        if dv is None:
            return False
        spec = dv.get("spec", {})
        modes = (spec.get("pvc") or spec.get("storage") or {}).get("accessModes", [])
        return "ReadWriteMany" in modes

    def _vmi_conditions(self, vmi: JSON) -> list[JSON]:
        ok, reason, message = self._migratable(vmi)
        running = vmi.get("status", {}).get("phase") == "Running"
        return [_condition("Ready", running), _condition("LiveMigratable", ok, reason, message)]

    def _vm_status(self, vm: JSON, vmi: JSON | None, *, provisioning: bool) -> JSON:
        old = vm.get("status", {})
        meta = vm["metadata"]
        status: JSON = {k: v for k, v in old.items() if k == "stateChangeRequests"}
        status["observedGeneration"] = meta.get("generation", 1)
        status["desiredGeneration"] = meta.get("generation", 1)
        status["runStrategy"] = run_strategy(vm)
        for field in REFERENCES:  # KubeVirt records the revision it expanded
            ref = referenced(vm, field)
            if ref is not None:
                status[f"{field}Ref"] = {
                    "kind": ref[0].kind, "name": ref[1],
                    "controllerRevisionRef": {"name": f"{meta['name']}-{ref[1]}-"
                                                      f"{meta['uid'][-6:]}-1"}}
        running = vmi is not None and vmi.get("status", {}).get("phase") == "Running"
        status["created"] = vmi is not None
        status["ready"] = running
        if vmi is None:
            status["printableStatus"] = "Provisioning" if provisioning else "Stopped"
            conditions = [_condition("Ready", False, "VMINotExists", "VMI does not exist")]
        else:
            migrating = any(m.get("status", {}).get("phase") not in (None, "Succeeded", "Failed")
                            and m["spec"].get("vmiName") == meta["name"]
                            for m in self.store.all_of(VMIM, meta["namespace"]))
            status["printableStatus"] = ("Migrating" if migrating else
                                         "Running" if running else "Starting")
            conditions = [c for c in vmi.get("status", {}).get("conditions", [])]
            if not conditions:
                conditions = [_condition("Ready", False, "NotRunning")]
            if (meta["namespace"], meta["name"]) in self._restart_required:
                conditions.append(_condition(
                    "RestartRequired", True, "",
                    "a non-live-updatable field was changed in the template spec"))
        status["conditions"] = _keep_transition_times(old.get("conditions", []), conditions)
        return status

    # ---- migrations --------------------------------------------------------------------
    def _migrations_step(self) -> bool:
        changed = False
        for mig in self.store.all_of(VMIM, None):
            phase = mig.get("status", {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                continue
            next_phase = MIGRATION_PHASES[MIGRATION_PHASES.index(phase) + 1] if phase else \
                MIGRATION_PHASES[0]
            if self.fail_at is not None and next_phase == self.fail_at:
                next_phase = "Failed"
            self._set_phase(mig, next_phase)
            changed = True
        return changed

    def _set_phase(self, mig: JSON, phase: str) -> None:
        status = mig.setdefault("status", {})
        status["phase"] = phase
        status.setdefault("phaseTransitionTimestamps", []).append(
            {"phase": phase, "phaseTransitionTimestamp": now()})
        ns, vmi_name = mig["metadata"]["namespace"], mig["spec"].get("vmiName", "")
        vmi = self.store.read(VMI, ns, vmi_name)
        if vmi is not None and phase in ("Succeeded", "Failed"):
            source = vmi["status"].get("nodeName", NODES[0])
            target = NODES[1] if source == NODES[0] else NODES[0]
            vmi["status"]["migrationState"] = {
                "sourceNode": source, "targetNode": target, "completed": phase == "Succeeded",
                "failed": phase == "Failed", "migrationUid": mig["metadata"]["uid"],
                "endTimestamp": now()}
            if phase == "Succeeded":
                vmi["status"]["nodeName"] = target
            self.store.write(VMI, vmi, "MODIFIED")
        self.store.write(VMIM, mig, "MODIFIED")


def _owner_ref(vm: JSON) -> JSON:
    meta = vm["metadata"]
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": meta["name"],
            "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}


def _keep_transition_times(old: list[JSON], new: list[JSON]) -> list[JSON]:
    """A condition keeps its lastTransitionTime while its status does not change (so a
    settled VM's status is stable and settling ends)."""
    before = {c["type"]: c for c in old}
    out = []
    for cond in new:
        prev = before.get(cond["type"])
        if prev is not None and prev["status"] == cond["status"]:
            cond = {**cond, "lastTransitionTime": prev.get("lastTransitionTime")}
        out.append(cond)
    return out
