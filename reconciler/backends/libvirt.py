"""The libvirt backend: VMs as libvirt domains on the nodes of the Cluster config.

Thin on purpose: it maps the Backend protocol onto node components —
node.cluster.config (which nodes), reconciler.core.expand (instancetypes/preferences), node.identity.cluster_store
(identity at cluster scope), node.cluster.host (define/start/stop/undefine with the owner marker
checked first; on the node the plan placed it, reconciler.planning.schedule), node.lifecycle.status
(printableStatus and conditions), node.lifecycle.pending (VMs that got no domain:
ErrorUnschedulable, ErrorPvcNotFound).

What `observe()` returns per VM: the body as last applied (sensitive values digested,
from the domain's metadata) with drifted facts of the persistent definition — vCPU
topology, memory, MACs — written over it (node.identity.records.overlay_drift); the node; the
identity read from the domain (UUID, SMBIOS serial, MACs); and the status. Power state
is in the status (printableStatus, Ready), not in the body.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import libvirt

from node.cluster.config import ClusterConfig, cluster_from_manifests
from node.cluster.host import ClaimNotFound, DomainRecord, NodeError, NodeHost, NotOurs
from node.cluster.networks import NetworkMap
from node.identity.cluster_store import ClusterIdentities
from node.identity.metadata import EVERY_INSTALLATION, Scope
from node.identity.node_store import IdentityStore
from node.identity.records import Applied, DomainFacts, overlay_drift
from node.lifecycle.decide import INTENT_HOLD, INTENT_NONE, INTENT_STOP
from node.lifecycle.pending import Pending, PendingStore
from node.lifecycle.status import (
    DomainView,
    RuntimeRecord,
    unplaced_status,
    vm_status,
)
from node.storage.disks import sweep_temp_files
from reconciler.backends.base import (
    BackendError,
    LiveIdentity,
    LiveObject,
    NodeAgent,
    Observation,
)
from reconciler.backends.libvirt_profile import PROFILE
from reconciler.core.expand import expand
from reconciler.core.migration import MigrationOutcome, MigrationPolicy, MigrationProgress
from reconciler.core.model import (
    JSON,
    DiskFile,
    Manifest,
    ObjectKey,
    PrintableStatus,
    VirtsyncError,
)
from reconciler.core.power import starts_on_create
from reconciler.core.statedir import state_dir
from reconciler.core.status import Condition, VMStatus
from reconciler.core.vmspec import VmSpec
from reconciler.planning.schedule import UNSCHEDULABLE, NodeCapacity, Placement, place, request_of
from reconciler.tree.desired import body_hash

PVC_NOT_FOUND = PrintableStatus.ERROR_PVC_NOT_FOUND


def open_backend(manifests: Sequence[Manifest], scope: Scope) -> LibvirtBackend:
    """The registry's opener: the nodes of the tree's Cluster object (or the default
    local node: VIRTSYNC_LIBVIRT_URI, else qemu:///system)."""
    return LibvirtBackend.from_manifests(manifests, scope=scope)


def _pending_live(p: Pending) -> LiveObject:
    """A VM that got no domain (unschedulable, missing claim). Its body is minimal: any
    desired spec differs from it, so the next apply tries again (it may fit by then)."""
    body = {"apiVersion": p.api_version, "kind": p.key.kind,
            "metadata": {"name": p.key.name, "namespace": p.key.namespace}}
    return LiveObject(key=p.key, api_version=p.api_version, body=body, revision=p.revision,
                      status=unplaced_status(p.printable_status, p.message))


class LibvirtBackend:
    profile = PROFILE

    def __init__(
        self,
        cluster: ClusterConfig,
        *,
        state: str | Path | None = None,
        clock: Callable[[], float] = time.time,
        scope: Scope = EVERY_INSTALLATION,
    ) -> None:
        networks = NetworkMap.from_config(cluster.networks)
        self.cluster = cluster
        base = state if state is not None else state_dir()
        # Identity follows the VM across nodes: the record in the state directory counts,
        # node stores are caches (node.identity.cluster_store, docs/identity.md).
        self.identities = ClusterIdentities(
            IdentityStore(base), {n.name: IdentityStore(n.storage_dir) for n in cluster.nodes})
        # rule 18: which marked domains are this installation's (the CLI passes its own)
        self.hosts = {n.name: NodeHost(n, networks, clock=clock, scope=scope,
                                       identities=self.identities.on(n.name))
                      for n in cluster.nodes}
        for host in self.hosts.values():
            host.co_tenants = frozenset(n.name for n in cluster.nodes
                                        if n.uri == host.config.uri and n.name != host.config.name)
        self.pending = PendingStore(base)
        self.clock = clock
        # The current batch's expansions (prepare_creates), reused by its creates: key →
        # (manifest, refs, expanded body), valid only for those very objects.
        self._expanded: dict[ObjectKey, tuple[Manifest, Mapping[ObjectKey, Manifest],
                                              Mapping[str, JSON]]] = {}
        # Each VM's last observed body, reused while its definition is unchanged
        # (`_observed_body`; a watch's resync, issue 13); a full observe keeps only
        # the VMs it saw.
        self._bodies: dict[ObjectKey, tuple[Applied, DomainFacts, tuple[str, str],
                                            Mapping[str, JSON], str]] = {}

    @classmethod
    def from_manifests(cls, manifests: Iterable[Manifest], **kw: Any) -> LibvirtBackend:
        return cls(cluster_from_manifests(manifests), **kw)

    def close(self) -> None:
        for host in self.hosts.values():
            host.close()

    def agents(self, *, every_installation: bool = False) -> dict[str, NodeAgent]:
        """One lifecycle agent per node: libvirt events drive the run strategies."""
        from node.lifecycle.agent import LifecycleAgent

        return {name: LifecycleAgent(
                    host, scope=host.scope.widened() if every_installation else None)
                for name, host in self.hosts.items()}

    def sweep_temp_files(self) -> tuple[str, ...]:
        """Temp disk files interrupted applies left on every node (see cycle.settle)."""
        now = self.clock()
        return tuple(p for host in self.hosts.values()
                     for p in sweep_temp_files(host.storage, now))

    # ------------------------------------------------------------------ observe

    def observe(self) -> Observation:
        objects: dict[ObjectKey, LiveObject] = {}
        conflicts: list[ObjectKey] = []
        now = self.clock()
        for host in self.hosts.values():
            try:
                scan = host.scan()
            except VirtsyncError as exc:
                raise BackendError(str(exc)) from exc
            conflicts.extend(scan.conflicts)
            for rec in scan.records:
                if rec.key in objects:
                    raise BackendError(
                        f"{rec.key.namespace}/{rec.key.name} is defined on node "
                        f"{objects[rec.key].node} and on node {host.config.name}; "
                        "undefine one of them by hand"
                    )
                objects[rec.key] = self._live(rec, host.config.name, now)
        try:
            pending = list(self.pending.items())
        except VirtsyncError as exc:
            raise BackendError(str(exc)) from exc
        for p in pending:
            if p.key not in objects:
                objects[p.key] = _pending_live(p)
        self._bodies = {k: v for k, v in self._bodies.items() if k in objects}
        ordered = tuple(objects[k] for k in sorted(objects))
        return Observation(ordered, tuple(sorted(set(conflicts))), self._nodes())

    def observe_keys(self, keys: Iterable[ObjectKey]) -> Observation:
        """observe() narrowed to `keys`, by name lookups instead of listing every domain
        (watch's incremental cycle): the same objects, conflicts and errors observe()
        would report for those keys."""
        objects: dict[ObjectKey, LiveObject] = {}
        conflicts: list[ObjectKey] = []
        now = self.clock()
        wanted = sorted({k for k in keys if k.kind == "VirtualMachine"})
        for key in wanted:
            for host in self.hosts.values():
                try:
                    dom = host.lookup(key)
                    rec = host.record(dom) if dom is not None else None
                except NotOurs:
                    conflicts.append(key)
                    continue
                except libvirt.libvirtError as exc:  # e.g. undefined between the two calls
                    raise BackendError(f"{host.where()}: reading {key}: {exc}") from exc
                except VirtsyncError as exc:
                    raise BackendError(str(exc)) from exc
                if rec is None:
                    continue
                if key in objects:
                    raise BackendError(
                        f"{key.namespace}/{key.name} is defined on node {objects[key].node} "
                        f"and on node {host.config.name}; undefine one of them by hand"
                    )
                objects[key] = self._live(rec, host.config.name, now)
        missing = set(wanted) - set(objects)
        if missing:
            try:
                pending = [p for p in self.pending.items() if p.key in missing]
            except VirtsyncError as exc:
                raise BackendError(str(exc)) from exc
            for p in pending:
                objects[p.key] = _pending_live(p)
        ordered = tuple(objects[k] for k in sorted(objects))
        return Observation(ordered, tuple(sorted(set(conflicts))), self._nodes())

    def _live(self, rec: DomainRecord, node: str, now: float) -> LiveObject:
        body: Mapping[str, JSON] = {}
        digest = ""
        disks: tuple[DiskFile, ...] = ()
        if rec.applied is not None:
            body, digest = self._observed_body(rec, rec.applied)
            disks = self.hosts[node].disk_files(rec.key, rec.applied.body,
                                                rec.facts.disk_files)
        view = DomainView(rec.state, rec.reason, rec.owner.spec_hash, rec.live_hash, rec.runtime,
                          rec.migration)
        status = vm_status(view, node, now)
        api = str(body.get("apiVersion", "kubevirt.io/v1"))
        return LiveObject(
            key=rec.key,
            api_version=api,
            body=body,
            node=node,
            revision=rec.owner.source_revision,
            spec_hash=rec.owner.spec_hash,
            identity=LiveIdentity(rec.uuid, rec.serial, dict(rec.facts.macs)),
            status=replace(_with_missing_disks(status, disks),
                           stop_requested=rec.runtime.intent == INTENT_STOP),
            disks=disks,
            body_hash=digest,
        )

    def _observed_body(self, rec: DomainRecord,
                       applied: Applied) -> tuple[Mapping[str, JSON], str]:
        """The applied body with drift written over it, and its body hash; the VM's last
        ones while its definition reads the same (the node reuses an unchanged text's
        parse, so the same objects: node.cluster.definitions)."""
        known = self._bodies.get(rec.key)
        if known is not None and known[0] is applied and known[1] is rec.facts \
                and known[2] == (rec.uuid, rec.serial):
            return known[3], known[4]
        body = overlay_drift(applied.body, applied.effective, rec.facts, uuid=rec.uuid,
                             serial=rec.serial)
        digest = body_hash(body)  # every plan hashes the live bodies: once here instead
        self._bodies[rec.key] = (applied, rec.facts, (rec.uuid, rec.serial), body, digest)
        return body, digest

    def _nodes(self) -> tuple[NodeCapacity, ...]:
        """The nodes as the scheduler sees them (the plan's placement step)."""
        return tuple(h.capacity() for h in self.hosts.values())

    # ------------------------------------------------------------------ finding a VM

    def _find(self, key: ObjectKey) -> tuple[NodeHost, Any] | None:
        found: list[tuple[NodeHost, Any]] = []
        for host in self.hosts.values():
            try:
                dom = host.lookup(key)
            except VirtsyncError as exc:
                raise BackendError(str(exc)) from exc
            if dom is not None:
                found.append((host, dom))
        if len(found) > 1:
            names = ", ".join(h.config.name for h, _ in found)
            raise BackendError(f"{key}: defined on several nodes ({names}); refusing to act")
        return found[0] if found else None

    def _require(self, key: ObjectKey) -> tuple[NodeHost, Any]:
        found = self._find(key)
        if found is None:
            raise BackendError(f"{key}: no domain on any node")
        return found

    def _grace(self, host: NodeHost, dom: Any, grace: int | None) -> int:
        if grace is not None:
            return grace
        rec = host.record(dom)
        applied = rec.applied.body if rec.applied is not None else {}
        return VmSpec(rec.key.namespace, rec.key.name, applied).termination_grace_seconds

    # ------------------------------------------------------------------ verbs

    def create(self, vm: Manifest, *, revision: str,
               refs: Mapping[ObjectKey, Manifest], node: str | None = None) -> None:
        try:
            self._create(vm, revision, refs, node)
        except (NotOurs, NodeError) as exc:
            raise BackendError(str(exc)) from exc
        except VirtsyncError as exc:
            if isinstance(exc, BackendError):
                raise
            raise BackendError(f"{vm.key}: {exc}") from exc
        finally:
            for host in self.hosts.values():  # what its step did not take (a failed one)
                host.staged.discard(vm.key)

    def _create(self, vm: Manifest, revision: str, refs: Mapping[ObjectKey, Manifest],
                node: str | None = None) -> None:
        hit = self._expanded.pop(vm.key, None)
        expanded = hit[2] if hit and hit[0] is vm and hit[1] is refs else expand(vm, refs)
        spec = VmSpec.from_body(vm.namespace, vm.name, expanded)
        found = self._find(vm.key)
        if found is not None:  # adopt (crash recovery): converge it like an update
            self._update(vm, expanded, spec, found, revision, refs, restart=False,
                         grace=None, force=False)
            if starts_on_create(spec.run_strategy):
                found[0].start(found[1])
            return
        will_run = starts_on_create(spec.run_strategy)
        # The plan's placement; without one (a direct call), the same scheduler decides.
        chosen = Placement(node) if node else place(self._nodes(), request_of(vm, refs))
        if chosen.node is None:
            self.pending.put(vm.key, vm.api_version, UNSCHEDULABLE, chosen.reason, revision,
                             vm.body)
            raise BackendError(f"{vm.key}: {UNSCHEDULABLE}: {chosen.reason}")
        host = self.hosts.get(chosen.node)
        if host is None:
            raise BackendError(f"{vm.key}: the plan places it on node {chosen.node}, which is "
                               "not in the Cluster config; plan again")
        try:
            dom = host.define(vm, expanded, revision=revision, refs=refs,
                              runtime=RuntimeRecord(), generation=1, fresh_scratch=True)
        except ClaimNotFound as exc:
            self.pending.put(vm.key, vm.api_version, PVC_NOT_FOUND, str(exc), revision, vm.body)
            raise BackendError(f"{vm.key}: {PVC_NOT_FOUND}: {exc}") from exc
        self.pending.remove(vm.key)
        if will_run:
            host.start(dom)

    def prepare_creates(self, creates: Sequence[tuple[Manifest, str | None]],
                        refs: Mapping[ObjectKey, Manifest]) -> None:
        """Before a batch of creates runs (reconciler.execute.apply.BatchPreparer): the
        new VMs' identities, stored in one durable step per node instead of one by one at
        each define (rule 17 still holds: each is on disk before its domain exists).
        Creates without a placement, or whose body does not expand, are left to `create`,
        which reports them as before."""
        by_node: dict[str, list[tuple[Manifest, Mapping[str, JSON]]]] = {}
        self._expanded = {}
        for vm, node in creates:
            if node is None or node not in self.hosts:
                continue
            try:
                expanded = expand(vm, refs)
            except VirtsyncError:
                continue
            self._expanded[vm.key] = (vm, refs, expanded)
            by_node.setdefault(node, []).append((vm, expanded))
        for node, vms in by_node.items():
            try:
                self.hosts[node].prepare_creates(vms, refs)
            except (VirtsyncError, OSError):
                continue  # e.g. the store's lock: each define tries again on its own

    def update(self, vm: Manifest, *, revision: str, refs: Mapping[ObjectKey, Manifest],
               restart: bool, grace_period: int | None = None, force: bool = False,
               node: str | None = None) -> None:
        try:
            found = self._find(vm.key)
            if found is None:  # pending (unschedulable, claim missing): try again
                self._create(vm, revision, refs, node)
                return
            expanded = expand(vm, refs)
            spec = VmSpec.from_body(vm.namespace, vm.name, expanded)
            self._update(vm, expanded, spec, found, revision, refs, restart=restart,
                         grace=grace_period, force=force)
        except BackendError:
            raise
        except VirtsyncError as exc:
            raise BackendError(f"{vm.key}: {exc}") from exc

    def _update(self, vm: Manifest, expanded: Mapping[str, JSON], spec: VmSpec,
                found: tuple[NodeHost, Any], revision: str,
                refs: Mapping[ObjectKey, Manifest], *, restart: bool, grace: int | None,
                force: bool) -> None:
        host, dom = found
        rec = host.record(dom)
        was_running = rec.active
        if restart and was_running:
            # The agent must not restart the old incarnation meanwhile (intent hold);
            # the new one is defined only once the old one is confirmed off.
            host.stop(dom, self._grace(host, dom, grace), force=force, intent=INTENT_HOLD)
        runtime = host.record(dom).runtime
        running_now = dom.isActive()
        dom = host.define(vm, expanded, revision=revision, refs=refs, runtime=runtime,
                          generation=rec.owner.generation + 1, fresh_scratch=not running_now)
        self.pending.remove(vm.key)
        if restart and was_running and spec.run_strategy != "Halted":
            host.start(dom)
        elif runtime.intent == INTENT_HOLD:
            host.set_runtime(dom, replace(runtime, intent=INTENT_NONE))

    def start(self, key: ObjectKey) -> None:
        host, dom = self._require(key)
        try:
            host.start(dom)
        except VirtsyncError as exc:
            raise BackendError(str(exc)) from exc

    def stop(self, key: ObjectKey, *, grace_period: int | None = None,
             force: bool = False) -> None:
        host, dom = self._require(key)
        try:
            host.stop(dom, self._grace(host, dom, grace_period), force=force, intent=INTENT_STOP)
        except VirtsyncError as exc:
            raise BackendError(str(exc)) from exc

    def restart(self, key: ObjectKey, *, grace_period: int | None = None,
                force: bool = False) -> None:
        host, dom = self._require(key)
        try:
            host.stop(dom, self._grace(host, dom, grace_period), force=force, intent=INTENT_HOLD)
            host.start(dom)  # stop() returned: the old incarnation is confirmed off
        except VirtsyncError as exc:
            raise BackendError(str(exc)) from exc

    def delete(self, key: ObjectKey, *, delete_disks: bool, grace_period: int | None = None,
               force: bool = False, files: Sequence[str] = ()) -> None:
        found = self._find(key)
        if found is None:
            self.pending.remove(key)
            return
        host, dom = found
        try:
            host.stop(dom, self._grace(host, dom, grace_period), force=force, intent=INTENT_STOP)
            host.undefine(dom)
            if delete_disks:
                host.remove_files(key, tuple(files))
        except VirtsyncError as exc:
            raise BackendError(str(exc)) from exc
        self.pending.remove(key)


    def replace(self, old: ObjectKey, vm: Manifest, *, revision: str,
                refs: Mapping[ObjectKey, Manifest], grace_period: int | None = None,
                force: bool = False, node: str | None = None) -> None:
        try:
            found = self._find(old)
            if old == vm.key or found is None:
                # Another node or placement (or an earlier run already undefined the
                # old domain): define anew; a moved identity record is found under vm.key.
                if found is not None:
                    self.delete(old, delete_disks=False, grace_period=grace_period,
                                force=force)
                self.create(vm, revision=revision, refs=refs, node=node)
                return
            if self._find(vm.key) is not None:
                raise BackendError(f"{vm.key}: cannot rename {old} to it: it already has a "
                                   "domain")
            self._rename(found, old, vm, revision, refs,
                         self._grace(found[0], found[1], grace_period), force)
        except BackendError:
            raise
        except VirtsyncError as exc:
            raise BackendError(f"{vm.key}: {exc}") from exc

    def migrate(self, key: ObjectKey, *, source: str, target: str, policy: MigrationPolicy,
                progress: Callable[[MigrationProgress], None] | None = None
                ) -> MigrationOutcome:
        """Peer-to-peer live migration (node.cluster.migration); the guest stays on the
        source when it fails."""
        src, dst = self.hosts.get(source), self.hosts.get(target)
        if src is None or dst is None:
            raise BackendError(f"{key}: no node named {source if src is None else target!r}")
        host, dom = self._require(key)
        if host is not src:
            raise BackendError(f"{key}: runs on {host.config.name}, not {source}; plan again")
        if not dom.isActive():
            raise BackendError(f"{key}: not running on {source}; only a running VM migrates")
        from node.cluster.migration import live_migrate  # only a migration pays for it

        try:
            return live_migrate(src, dst, dom, policy, on_progress=progress)
        except VirtsyncError as exc:
            raise BackendError(f"{key}: {exc}") from exc

    def cancel_migration(self, key: ObjectKey) -> bool:
        _host, dom = self._require(key)
        from node.cluster.migration import abort_migration

        try:
            return abort_migration(dom)
        except VirtsyncError as exc:
            raise BackendError(f"{key}: {exc}") from exc

    def _rename(self, found: tuple[NodeHost, Any], old: ObjectKey, vm: Manifest,
                revision: str, refs: Mapping[ObjectKey, Manifest], grace: int,
                force: bool) -> None:
        """Rule 17: the renamed VM keeps its UUID, serial, MACs and disk serials, and a
        failed step leaves the old domain defined (and running if it was). libvirt
        refuses two domains with one UUID, so the old one is undefined just before the
        new one is defined, and defined again from its saved XML if that fails."""
        host, dom = found
        rec = host.record(dom)
        old_xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
        if rec.active:
            try:
                host.stop(dom, grace, force=force, intent=INTENT_HOLD)
            except VirtsyncError:
                host.set_runtime(dom, rec.runtime)  # still running: the agent's again
                raise
        try:
            host.identities.move(old, vm.key)
        except VirtsyncError:
            self._restore(host, old, None, old_xml, rec.active)
            raise
        try:
            expanded = expand(vm, refs)
            runtime = replace(rec.runtime, intent=INTENT_NONE if rec.runtime.intent ==
                              INTENT_HOLD else rec.runtime.intent)
            xml = host.render(vm, expanded, revision=revision, refs=refs, runtime=runtime,
                              generation=rec.owner.generation + 1, fresh_scratch=True)
            host.undefine(dom)
        except VirtsyncError:
            self._restore(host, old, vm.key, old_xml, rec.active)
            raise
        try:
            new = host.define_xml(xml, vm.key)
        except VirtsyncError as exc:
            self._restore(host, old, vm.key, old_xml, rec.active)
            raise BackendError(f"{vm.key}: renaming {old} failed; its domain was restored: "
                               f"{exc}") from exc
        self.pending.remove(vm.key)
        spec = VmSpec.from_body(vm.namespace, vm.name, expanded)
        if rec.active and spec.run_strategy != "Halted":  # the power state carries over
            host.start(new)

    @staticmethod
    def _restore(host: NodeHost, old: ObjectKey, moved_to: ObjectKey | None, old_xml: str,
                 was_running: bool) -> None:
        """Undo a rename that failed midway: the identity back under the old key (if it
        was moved), the old domain defined again from its saved XML (if it was
        undefined), and started if it ran."""
        if moved_to is not None:
            host.identities.move(moved_to, old)
        dom = host.lookup(old) or host.define_xml(old_xml, old)
        if was_running:
            host.start(dom)


def _with_missing_disks(status: VMStatus, disks: tuple[DiskFile, ...]) -> VMStatus:
    """A VM whose disk file is gone is not healthy: any missing file makes Ready false
    (reason DiskFileMissing); one that is not running cannot start and prints KubeVirt's
    ErrorPvcNotFound for a missing claim. A running guest still holds the deleted file
    open, so it stays Running (the plan relies on the power state)."""
    missing = [d for d in disks if not d.exists]
    if not missing:
        return status
    message = "disk file missing: " + ", ".join(f"{d.path} (volume {d.volume})"
                                               for d in missing)
    printable = status.printable_status
    if printable in (PrintableStatus.STOPPED, PrintableStatus.CRASH_LOOP_BACK_OFF) and any(d.is_claim for d in missing):
        printable = PVC_NOT_FOUND
    others = tuple(c for c in status.conditions if c.type != "Ready")
    return replace(status, printable_status=printable, ready=False,
                   conditions=(Condition("Ready", False, "DiskFileMissing", message), *others))
