"""The kubevirt backend: the tree's objects on a Kubernetes cluster running KubeVirt.

KubeVirt does the node work (scheduling, run strategies, live migration); this backend
maps the Backend protocol onto the Kubernetes API (`client.py`):
- apply: server-side apply as field manager `virtsync` (a conflict fails the step,
  naming the other manager; `--force-conflicts` only on request), of the body `virtsync
  render` emits plus virtsync's marks (`ownership.py`);
- observe: every kind virtsync applies, listed by its ownership labels (rule 18), cut to
  the fields virtsync owns (`fieldset.py`: server-filled fields are never drift), and per
  desired object a server-side dry run that says whether applying would change
  anything (defaults and webhooks seen); when the dry run cannot be made the plan falls
  back to the local normalizer and says so;
- power: KubeVirt's start/stop/restart subresources (`power.py` for the operator stop);
- migrate: a VirtualMachineInstanceMigration, followed to its end (`migration.py`);
- the inventory of each source: a ConfigMap (`inventory_map.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from node.identity.metadata import Scope
from reconciler.backends.base import (
    BackendError,
    BackendProfile,
    LiveIdentity,
    LiveObject,
    NodeAgent,
    Observation,
)
from reconciler.backends.kubevirt import configure
from reconciler.backends.kubevirt.client import (
    Conflict,
    KubeClient,
    Target,
    Unreachable,
    connect,
)
from reconciler.backends.kubevirt.config import CLUSTER_KIND, KubevirtConfig, config_of
from reconciler.backends.kubevirt.fieldset import manager_fields, owned_subset
from reconciler.backends.kubevirt.identity import (
    firmware_identity,
    interface_macs,
    with_identity,
)
from reconciler.backends.kubevirt.inventory_map import InventoryMaps
from reconciler.backends.kubevirt.migration import cancel, run_migration
from reconciler.backends.kubevirt.ownership import (
    APPLIED_RUN_STRATEGY,
    MANAGER,
    REVISION,
    annotation,
    is_ours,
    marked_body,
    selector,
    without_marks,
)
from reconciler.backends.kubevirt.power import (
    applied_strategy,
    as_applied,
    held,
    operator_stopped,
)
from reconciler.backends.kubevirt.resources import (
    APPLIED,
    DATA_VOLUME,
    VM,
    VM_SUBRESOURCES,
    VMI,
    Resource,
    resource_for,
)
from reconciler.backends.kubevirt.status import vm_status
from reconciler.core.migration import MigrationOutcome, MigrationPolicy, MigrationProgress
from reconciler.core.model import JSON, Manifest, ObjectKey
from reconciler.core.power import RunStrategy, run_strategy
from reconciler.core.sensitive import digest_sensitive
from reconciler.planning.revisions import without_revisions

VM_KIND = "VirtualMachine"
SELF_RUNNING = frozenset({RunStrategy.ALWAYS, RunStrategy.RERUN_ON_FAILURE})
# the field manager that takes back runStrategy when git ends an operator stop
POWER_MANAGER = "virtsync-run-strategy"
DELETE_TIMEOUT = 300.0  # seconds a replace waits for the old object to be gone


def open_backend(manifests: Sequence[Manifest], scope: Scope) -> KubevirtBackend:
    """The registry's opener: the cluster the tree's Cluster object names."""
    config = config_of(manifests)
    client = KubeClient(connect(Target(config.context, config.in_cluster)))
    return KubevirtBackend(client, manifests, config=config, scope=scope)


def executing_profile(manifests: Sequence[Manifest]) -> BackendProfile:
    """The planning profile for the tree's rollout strategy, for this backend: it applies
    every kind render emits, and a pruned VM keeps its DataVolumes unless its disk policy
    says Delete (it orphans them before deleting the VM), unlike `kubectl delete`."""
    cluster = next((m for m in manifests if m.kind == CLUSTER_KIND), None)
    spec = cluster.body.get("spec") if cluster is not None else None
    base = configure(spec if isinstance(spec, dict) else {})
    return replace(base, kinds=frozenset(APPLIED), classification=replace(
        base.classification, vm_delete_takes_owned_volumes=False))


class KubevirtBackend:
    def __init__(self, client: KubeClient, manifests: Sequence[Manifest], *,
                 config: KubevirtConfig | None = None, scope: Scope,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.profile = executing_profile(manifests)
        self.scope = scope
        self.force_conflicts = False  # ServerSideApplier: --force-conflicts
        self.conflicted = ""  # the first apply conflict of this run: nothing applied after
        self.desired = {m.key: m for m in manifests if m.kind in APPLIED}
        config = config or KubevirtConfig()
        self.inventories = InventoryMaps(client, config.namespace, scope.installation)
        self.clock = clock
        self.sleep = sleep

    def close(self) -> None:
        self.client.close()

    def agents(self, *, every_installation: bool = False) -> Mapping[str, NodeAgent]:
        return {}  # KubeVirt's controllers enforce the run strategies

    # ------------------------------------------------------------------ inventory

    def read_inventory(self, source: str) -> bytes | None:
        return self.inventories.read(source)

    def write_inventory(self, source: str, data: bytes) -> None:
        self.inventories.write(source, data)

    def inventory_location(self, source: str) -> str:
        return self.inventories.location(source)

    # ------------------------------------------------------------------ observe

    def observe(self) -> Observation:
        sel = selector(self.scope.installation,
                       every_installation=self.scope.every_installation)
        live: dict[ObjectKey, dict[str, JSON]] = {}
        for r in APPLIED.values():
            for item in self.client.list(r, label_selector=sel):
                live[_key(r, item)] = item
        # a VM's running instance has its name (for the node it runs on)
        instances = {_key(VM, i): i for i in self.client.list(VMI)} if any(
            k.kind == VM_KIND for k in live) else {}
        notes: list[str] = []
        objects = [self._live(key, item, instances.get(key), notes)
                   for key, item in sorted(live.items())]
        conflicts = tuple(k for k in sorted(self.desired) if k not in live and self._taken(k))
        return Observation(tuple(objects), conflicts, notes=tuple(notes))

    def _taken(self, key: ObjectKey) -> bool:
        """Rule 3: a desired object that exists without this installation's marks."""
        found = self.client.get(resource_for(key.kind), key.namespace, key.name)
        return found is not None

    def _live(self, key: ObjectKey, item: dict[str, JSON], vmi: dict[str, JSON] | None,
              notes: list[str]) -> LiveObject:
        fields = manager_fields(item, MANAGER)
        owned = owned_subset(item, fields) if fields else {}
        body = without_marks(_named(owned if isinstance(owned, dict) else {}, item))
        stopped = key.kind == VM_KIND and operator_stopped(item)
        if stopped:
            body = as_applied(body, annotation(item, APPLIED_RUN_STRATEGY))
        desired = self.desired.get(key)
        if desired is not None and self._dry_run_unchanged(desired, item, notes):
            body = dict(desired.body)  # the server says applying git changes nothing
        status = vm_status(item, vmi, stop_requested=stopped) if key.kind == VM_KIND \
            else vm_status({}, None)
        uuid, serial = firmware_identity(item)
        # Secrets leave a backend only as digests (the protocol's contract, rule 10).
        return LiveObject(key=key, api_version=str(item.get("apiVersion", "")),
                          body=digest_sensitive(dict(body)),
                          node=status.node, revision=annotation(item, REVISION),
                          identity=LiveIdentity(uuid, serial, interface_macs(item)),
                          status=status)

    def _dry_run_unchanged(self, m: Manifest, live: Mapping[str, JSON],
                           notes: list[str]) -> bool:
        """Whether a server-side dry-run apply of `m` leaves the object as it is (the
        server's defaulting and webhooks included). False, with a note, when no dry run
        could be made: then the local normalizer decides."""
        r = resource_for(m.kind, m.api_version)
        body = self._body(m, live, annotation(live, REVISION))
        try:
            after = self.client.apply(r, m.namespace, m.name, body,
                                      force=self.force_conflicts, dry_run=True)
        except Unreachable:
            raise
        except BackendError as exc:
            notes.append(f"{m.key}: server-side dry run failed ({exc}); compared with the "
                         "local normalizer instead")
            return False
        return _content(after) == _content(live)

    # ------------------------------------------------------------------ applying

    def _body(self, m: Manifest, live: Mapping[str, JSON] | None,
              revision: str) -> dict[str, JSON]:
        """What apply sends for `m`, given the live object (None: not there yet)."""
        strategy = applied_strategy(m.body) if m.kind == VM_KIND else None
        # as git holds it: no virtsync instancetype revision pins (KubeVirt names those)
        body = marked_body(without_revisions(m, self.desired),
                           installation=self.scope.installation, revision=revision,
                           run_strategy=strategy)
        if m.kind == VM_KIND and live is not None and operator_stopped(live) \
                and annotation(live, APPLIED_RUN_STRATEGY) == strategy:
            return held(body)  # git did not change runStrategy: the stop holds (rule 16)
        return body

    def _apply(self, m: Manifest, revision: str, live: Mapping[str, JSON] | None,
               body: Mapping[str, JSON] | None = None) -> dict[str, JSON]:
        sent = body if body is not None else self._body(m, live, revision)
        r = resource_for(m.kind, m.api_version)
        if m.kind == VM_KIND and live is not None and operator_stopped(live) \
                and run_strategy(sent) is not RunStrategy.HALTED:
            self._take_run_strategy(r, m, sent)
        self._refuse_after_conflict(m.key)
        try:
            return self.client.apply(r, m.namespace, m.name, sent, force=self.force_conflicts)
        except Conflict as exc:
            self.conflicted = f"{m.key}: {exc}"
            raise BackendError(f"{exc} (another field manager owns it; change it there, or "
                               "pass --force-conflicts to take it over)") from exc

    def _refuse_after_conflict(self, key: ObjectKey) -> None:
        """After an apply conflict nothing more is changed in this run: what comes later
        in the plan may depend on the object that could not be applied."""
        if self.conflicted:
            raise BackendError(f"{key}: not applied: an earlier object conflicted "
                               f"({self.conflicted})")

    def _take_run_strategy(self, r: Resource, m: Manifest, sent: Mapping[str, JSON]) -> None:
        """Git changed the run strategy of a VM an operator stopped: that ends the stop
        (rule 16). KubeVirt's stop made virt-api the owner of the field; take just that
        field back (forced, as its own manager), so the apply that follows shares it
        instead of conflicting, and no other field is forced."""
        spec = sent.get("spec")
        power = {k: v for k, v in spec.items() if k in ("runStrategy", "running")} \
            if isinstance(spec, Mapping) else {}
        body: dict[str, JSON] = {"apiVersion": m.api_version, "kind": m.kind,
                                 "metadata": {"name": m.name, "namespace": m.namespace},
                                 "spec": power}
        self.client.apply(r, m.namespace, m.name, body, force=True, manager=POWER_MANAGER)

    def _get_ours(self, key: ObjectKey) -> dict[str, JSON] | None:
        """The live object, None when absent; BackendError when it is not ours (rule 3)."""
        found = self.client.get(resource_for(key.kind), key.namespace, key.name)
        if found is not None and not is_ours(found, self.scope.installation,
                                             every_installation=self.scope.every_installation):
            raise BackendError(f"{key} exists without virtsync's marks (or another "
                               "installation's); not touching it")
        return found

    def create(self, vm: Manifest, *, revision: str,
               refs: Mapping[ObjectKey, Manifest], node: str | None = None) -> None:
        self._apply(vm, revision, self._get_ours(vm.key))  # an existing one is adopted

    def update(self, vm: Manifest, *, revision: str, refs: Mapping[ObjectKey, Manifest],
               restart: bool, grace_period: int | None = None, force: bool = False,
               node: str | None = None) -> None:
        live = self._get_ours(vm.key)
        self._apply(vm, revision, live)
        if restart and vm.kind == VM_KIND and live is not None and _created(live):
            self.restart(vm.key, grace_period=grace_period, force=force)

    def replace(self, old: ObjectKey, vm: Manifest, *, revision: str,
                refs: Mapping[ObjectKey, Manifest], grace_period: int | None = None,
                force: bool = False, node: str | None = None) -> None:
        """Delete the old object keeping its disks, wait until it is gone, create the new
        one. Rule 17: a VM's server-filled firmware UUID and serial carry over when git
        pins none."""
        previous = self._get_ours(old)
        if old != vm.key and self._get_ours(vm.key) is not None:
            raise BackendError(f"{vm.key}: cannot rename {old} to it: it already exists")
        body = self._body(vm, None, revision)
        if previous is not None:
            body = with_identity(body, previous)
            self.delete(old, delete_disks=False, grace_period=grace_period, force=force)
            self._wait_gone(old)
        self._apply(vm, revision, None, body)

    # ------------------------------------------------------------------ power

    def _vm_call(self, key: ObjectKey, subresource: str, body: Mapping[str, JSON]) -> None:
        self._refuse_after_conflict(key)
        if self._get_ours(key) is None:
            raise BackendError(f"{key}: no such VirtualMachine")
        self.client.put_subresource(VM_SUBRESOURCES, key.namespace, key.name, subresource,
                                    body)

    def start(self, key: ObjectKey) -> None:
        """KubeVirt's start. With Always or RerunOnFailure applied (and no operator
        stop) KubeVirt runs the VM itself: nothing to ask (it would answer 409)."""
        self._refuse_after_conflict(key)
        live = self._get_ours(key)
        if live is None:
            raise BackendError(f"{key}: no such VirtualMachine")
        if run_strategy(live) in SELF_RUNNING and not operator_stopped(live):
            return
        self.client.put_subresource(VM_SUBRESOURCES, key.namespace, key.name, "start", {})

    def stop(self, key: ObjectKey, *, grace_period: int | None = None,
             force: bool = False) -> None:
        """KubeVirt's graceful stop (ACPI, then its grace period); `force` (only on
        request) makes the grace period 0. A VM already Halted is being stopped by
        KubeVirt (the apply before this step set it): only `force` asks again."""
        live = self._get_ours(key)
        if live is not None and run_strategy(live) is RunStrategy.HALTED \
                and not (force and _created(live)):
            return
        body: dict[str, JSON] = {"gracePeriod": 0} if force else (
            {"gracePeriod": grace_period} if grace_period is not None else {})
        try:
            self._vm_call(key, "stop", body)
        except Conflict:
            if _created(self._get_ours(key) or {}):
                raise
            # 409 "VM is not running": already off, which is what stop wants

    def restart(self, key: ObjectKey, *, grace_period: int | None = None,
                force: bool = False) -> None:
        body: dict[str, JSON] = {"gracePeriodSeconds": 0} if force else (
            {"gracePeriodSeconds": grace_period} if grace_period is not None else {})
        self._vm_call(key, "restart", body)

    def delete(self, key: ObjectKey, *, delete_disks: bool, grace_period: int | None = None,
               force: bool = False, files: Sequence[str] = ()) -> None:
        """Delete the object. A VM's owned DataVolumes go with it only with
        `delete_disks` (its disk policy said Delete); otherwise they are orphaned first
        and kept (rule 13)."""
        self._refuse_after_conflict(key)
        live = self._get_ours(key)
        if live is None:
            return
        if key.kind == VM_KIND and not delete_disks:
            self._orphan_volumes(key, live)
        self.client.delete(resource_for(key.kind), key.namespace, key.name,
                           grace_period=0 if force else None)

    def _orphan_volumes(self, key: ObjectKey, vm: Mapping[str, JSON]) -> None:
        meta = vm.get("metadata")
        uid = meta.get("uid") if isinstance(meta, Mapping) else None
        for dv in self.client.list(DATA_VOLUME, key.namespace):
            meta = dv.get("metadata")
            refs = meta.get("ownerReferences") if isinstance(meta, dict) else None
            if not isinstance(refs, list) or not any(
                    isinstance(r, dict) and r.get("uid") == uid for r in refs):
                continue
            kept = [r for r in refs if not (isinstance(r, dict) and r.get("uid") == uid)]
            name = str(meta.get("name")) if isinstance(meta, dict) else ""
            self.client.merge_patch(DATA_VOLUME, key.namespace, name,
                                    {"metadata": {"ownerReferences": kept or None}})

    def _wait_gone(self, key: ObjectKey) -> None:
        deadline = self.clock() + DELETE_TIMEOUT
        r = resource_for(key.kind)
        while self.client.get(r, key.namespace, key.name) is not None:
            if self.clock() > deadline:
                raise BackendError(f"{key}: still terminating after {DELETE_TIMEOUT:.0f} s")
            self.sleep(1.0)

    # ------------------------------------------------------------------ migration

    def migrate(self, key: ObjectKey, *, source: str, target: str, policy: MigrationPolicy,
                progress: Callable[[MigrationProgress], None] | None = None
                ) -> MigrationOutcome:
        live = self._get_ours(key)
        if live is None or not _created(live):
            raise BackendError(f"{key}: not running; only a running VM migrates")
        return run_migration(self.client, key, target=target, policy=policy,
                             installation=self.scope.installation, progress=progress,
                             clock=self.clock)

    def cancel_migration(self, key: ObjectKey) -> bool:
        return cancel(self.client, key)


def _key(r: Resource, item: Mapping[str, JSON]) -> ObjectKey:
    meta = item.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    return ObjectKey(r.kind, str(meta.get("namespace") or "") if r.namespaced else "",
                     str(meta.get("name") or ""))


def _named(owned: dict[str, JSON], item: Mapping[str, JSON]) -> dict[str, JSON]:
    """The owned fields plus what identifies the object (never listed as owned)."""
    meta = item.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    ident = {k: meta[k] for k in ("name", "namespace") if k in meta}
    mine = owned.get("metadata")
    return {**owned, "apiVersion": item.get("apiVersion"), "kind": item.get("kind"),
            "metadata": {**(mine if isinstance(mine, dict) else {}), **ident}}


def _content(obj: Mapping[str, JSON]) -> tuple[JSON, JSON, JSON]:
    """What an apply can change: spec, labels, annotations (not status, not metadata the
    server keeps such as resourceVersion or managedFields timestamps)."""
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    return obj.get("spec"), meta.get("labels"), meta.get("annotations")


def _created(vm: Mapping[str, JSON]) -> bool:
    """Whether the VM has an instance (KubeVirt's status.created)."""
    status = vm.get("status")
    return isinstance(status, Mapping) and status.get("created") is True
