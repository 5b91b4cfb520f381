"""One libvirt node: read its managed domains, define, start, stop and undefine them.

`NodeHost` is the side-effecting layer under the libvirt backend. It puts the node
components together (spec → identity store → disks → networks → pure domain builder)
and enforces the node's safety rules:

- rule 3: a domain is only touched when its persistent definition carries virtsync's
  owner marker for the expected VM; a domain named like a VM (`<ns>_<name>`) without
  the marker is a conflict, reported and never changed (`NotOurs`);
- rule 18: the same for a marked domain outside this installation's `Scope` (another
  state directory's VM): it is a conflict, never read as ours, never changed;
- rule 6: a domain starts only after its disks were checked against every running
  domain of the node, and a restart redefines only after the old incarnation is
  confirmed off (node.lifecycle.stop);
- rule 9 and secrets: disk handling is node.storage.disks (confined paths); the applied body is
  stored digested (node.identity.records); rule 14: hostDisk only in the node's hostDiskDir;
- opening a local qemu:///system node checks that QEMU's user can reach its directories
  (node.storage.qemu_access), so nothing is created for a guest that could never start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import libvirt
from lxml import etree

from node.cluster.config import NodeConfig, node_facts
from node.cluster.definitions import Definition, DefinitionMemo, parse_root
from node.cluster.networks import NetworkMap, check_sources, resolve_interfaces
from node.domain.naming import domain_name, parse_domain_name
from node.identity.cluster_store import NodeIdentities
from node.identity.metadata import EVERY_INSTALLATION, OwnerMetadata, Scope, parse_owner_metadata
from node.identity.node_store import IdentityStore
from node.identity.records import (
    RUNTIME_NS,
    RUNTIME_PREFIX,
    Applied,
    DomainFacts,
    Effective,
    applied_element,
    decorate,
    runtime_xml,
)
from node.lifecycle.decide import INTENT_NONE
from node.lifecycle.migrating import outgoing_migration
from node.lifecycle.status import RuntimeRecord
from node.storage.disks import (
    OWN_FILES,
    NodeStorage,
    claim_sizes,
    files_of_running_domains,
    new_disk_files,
    new_seeds,
    own_leftovers,
    prepare_disks,
    remove_files,
)
from node.storage.paths import safe_component
from node.storage.qemu_access import describe_blocks, is_local_system, qemu_account
from node.storage.staging import Stager
from reconciler.core.migration import MigrationProgress
from reconciler.core.model import CLAIM_SOURCES, JSON, DiskFile, Manifest, ObjectKey, VirtsyncError
from reconciler.core.sensitive import digest_sensitive
from reconciler.core.statedir import state_dir
from reconciler.core.vmspec import TEMPLATE_PATH, VmSpec
from reconciler.planning.schedule import NodeCapacity

if TYPE_CHECKING:  # made or called only where a VM is created or stopped (issue 13:
    # a no-op plan or apply does not import them)
    from node.domain.model import NodeFacts
    from node.lifecycle.stop import StopResult

VM_KIND = "VirtualMachine"


def _quiet(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; ours are raised with context."""


libvirt.registerErrorHandler(_quiet, None)


class NodeError(VirtsyncError):
    """The node could not be reached or answered with an error."""


class NotOurs(VirtsyncError):
    """A domain exists under a VM's name but without virtsync's owner marker."""


class ClaimNotFound(VirtsyncError):
    """A volume refers to a claim that has no disk on the node and no declared size."""


def spec_hash(vm: VmSpec) -> str:
    """Hash of what the guest is built from (spec.template.spec, secrets digested): labels,
    run strategy and other fields that need no restart do not change it."""
    raw = json.dumps(digest_sensitive(vm.template_spec, TEMPLATE_PATH),
                     sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class DomainRecord:
    """One managed domain as read from the node."""

    key: ObjectKey
    domain: str
    owner: OwnerMetadata
    applied: Applied | None
    runtime: RuntimeRecord
    state: int
    reason: int
    live_hash: str | None
    facts: DomainFacts
    uuid: str
    serial: str
    migration: MigrationProgress | None = None  # an outgoing migration job (status)

    @property
    def active(self) -> bool:
        return self.live_hash is not None


@dataclass(frozen=True)
class Scan:
    records: tuple[DomainRecord, ...]
    conflicts: tuple[ObjectKey, ...]


# A VM's disks as (name, source, file, claim), and its own directory (None: its names
# cannot make one): what `NodeHost.disk_files` stats.
_DiskRefs = tuple[tuple[tuple[str, str, str, str], ...], str | None]

# (state, reason, active): what a record needs of a domain's run state.
Status = tuple[int, int, bool]


def _status(dom: Any) -> Status:
    state, reason = dom.state()
    return state, reason, bool(dom.isActive())


def _statuses(conn: Any) -> list[tuple[Any, Status]]:
    """Every domain with its status in two calls, not two per domain (issue 13: a no-op
    plan of 50 VMs spent more on these round trips than on the domains' XML). State first,
    then activity, in the order `_status` reads them."""
    stats = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE)
    active = {d.UUIDString() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)}
    return [(dom, (int(s["state.state"]), int(s["state.reason"]), dom.UUIDString() in active))
            for dom, s in stats]


def _parsed(xml: str) -> Any:
    """parse_root, failing as parse_owner_metadata does on XML that is not well-formed."""
    try:
        return parse_root(xml)
    except etree.XMLSyntaxError as exc:
        raise VirtsyncError(f"domain XML is not well-formed: {exc}") from exc


def _read_record(dom: Any, owner: OwnerMetadata, definition: Definition,
                 status: Status | None = None) -> DomainRecord:
    state, reason, active = status if status is not None else _status(dom)
    live_hash = None
    migration = None
    if active:  # only a running domain has a migration job: one call, no more
        live = parse_owner_metadata(dom.XMLDesc(0))
        live_hash = live.spec_hash if live is not None else ""
        migration = _outgoing(dom)
    return DomainRecord(
        key=owner.key,
        domain=dom.name(),
        owner=owner,
        applied=definition.applied,
        runtime=definition.runtime,
        state=state,
        reason=reason,
        live_hash=live_hash,
        facts=definition.facts,
        uuid=dom.UUIDString(),
        serial=definition.serial,
        migration=migration,
    )


def _outgoing(dom: Any) -> MigrationProgress | None:
    try:
        return outgoing_migration(dom.jobStats(0))
    except libvirt.libvirtError:
        return None  # a driver without job statistics (test:///default): no migration


def _named_for(domain: str, owner: OwnerMetadata) -> bool:
    """Rule 3: a marker counts only on the domain named for the VM it names; a marker
    naming another VM makes the domain a conflict, never that other VM."""
    try:
        return domain == domain_name(owner.namespace, owner.name)
    except VirtsyncError:
        return False


def owns(marked: str, me: str, co_tenants: frozenset[str]) -> bool:
    """Whether node entry `me` sees a domain whose marker names node entry `marked`:
    yes unless `marked` is another entry on the same daemon. A domain moved here from
    another daemon by hand (raw `virsh migrate`) still names its old node; hiding it
    would let the plan create a second guest on the same disks."""
    return not marked or marked == me or marked not in co_tenants


class NodeHost:
    """Operations on one node. The libvirt connection is opened lazily and reused."""

    def __init__(
        self,
        config: NodeConfig,
        networks: NetworkMap,
        *,
        clock: Callable[[], float] = time.time,
        scope: Scope = EVERY_INSTALLATION,
        identities: IdentityStore | NodeIdentities | None = None,
    ) -> None:
        self.config = config
        self.scope = scope
        self.networks = networks
        self.storage = NodeStorage.of(config.storage_dir, config.image_dir,
                                      config.host_disk_dir, protected=(state_dir(),))
        # The backend passes the cluster-scoped view (node.identity.cluster_store); alone, a
        # node keeps identity in its own storage directory.
        self.identities = identities if identities is not None else IdentityStore(
            config.storage_dir)
        self.clock = clock
        self._conn: Any = None
        # Other node entries on this same libvirt daemon (same URI): only their domains
        # are someone else's here. The backend fills it in.
        self.co_tenants: frozenset[str] = frozenset()
        # refs (as passed to render), its size, and its DataVolumes by namespace
        self._dv_index: tuple[Mapping[ObjectKey, Manifest], int, dict[str, list[Manifest]]] \
            | None = None
        # Specs prepare_identities parsed, for render to reuse: key → (expanded body, spec),
        # valid only for that very body.
        self._specs: dict[ObjectKey, tuple[Mapping[str, JSON], VmSpec]] = {}
        # Each domain's last definition text, parsed (a watch's resync reparses only
        # what changed; node.cluster.definitions).
        self._definitions = DefinitionMemo()
        self._looked_up: dict[str, tuple[str, Any]] = {}  # the last lookup's (text, parse)
        self._disk_memo: dict[ObjectKey, tuple[Mapping[str, JSON], Mapping[str, str],
                                               _DiskRefs]] = {}
        # The disk files a batch of creates started making ahead (node.storage.staging).
        self.staged = Stager()

    # ------------------------------------------------------------ connection and facts

    def where(self) -> str:
        return f"node {self.config.name} ({self.config.uri})"

    def conn(self) -> Any:
        if self._conn is not None:
            try:
                if self._conn.isAlive():
                    return self._conn
            except libvirt.libvirtError:
                pass
        try:
            conn = libvirt.open(self.config.uri)
        except libvirt.libvirtError as exc:
            raise NodeError(f"{self.where()}: cannot connect: {exc}") from exc
        try:
            self._check_qemu_access(conn)
        except NodeError:
            conn.close()
            raise
        self._conn = conn
        return conn

    def console_log_dir(self) -> Path:
        return Path(self.config.storage_dir) / ".virtsync-console"

    def _check_qemu_access(self, conn: Any) -> None:
        """Before anything is created: QEMU's user must be able to reach the node's
        directories, or the guest would fail to start with "Permission denied"."""
        if not is_local_system(self.config.uri) or conn.getType() != "QEMU":
            return  # remote node or no QEMU (the test driver): nothing to check here
        who = qemu_account()
        if who is None:
            return
        dirs = [("storageDir", self.config.storage_dir), ("imageDir", self.config.image_dir),
                ("console log directory", str(self.console_log_dir()))]
        if self.config.host_disk_dir is not None:
            dirs.append(("hostDiskDir", self.config.host_disk_dir))
        problems = describe_blocks(dirs, who)
        if problems:
            raise NodeError(f"{self.where()}: " + "; ".join(problems))

    def close(self) -> None:
        self.staged.close()
        if self._conn is not None:
            try:
                self._conn.close()
            except libvirt.libvirtError:
                pass
            self._conn = None

    def facts(self) -> NodeFacts:
        from node.domain.model import NodeFacts

        conn = self.conn()
        test = conn.getType() == "TEST"
        domain_type = "test" if test else os.environ.get("VIRTSYNC_DOMAIN_TYPE", "qemu")
        if domain_type not in ("kvm", "qemu", "test"):
            raise NodeError(f"VIRTSYNC_DOMAIN_TYPE={domain_type!r}: want kvm or qemu")
        return NodeFacts(
            name=self.config.name,
            domain_type=domain_type,  # type: ignore[arg-type]
            arch="i686" if test else "x86_64",
            machine="pc" if test else "q35",
            console_log_dir=str(self.console_log_dir()),
        )

    def capacity(self) -> NodeCapacity:
        """Free memory and vCPUs for placement: the capacity (configured `memoryMiB`, else
        the host's) times the overcommit ratio, minus what running domains use. With
        neither a configured size nor memory overcommit, the host's free memory."""
        try:
            conn = self.conn()
        except NodeError:
            return node_facts(self.config, 0, reachable=False)
        cfg = self.config
        host = conn.getInfo()  # [model, memory MiB, CPUs, ...]
        # virDomainGetInfo: [state, max KiB, current KiB, vCPUs, CPU time]
        running = [d.info() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)]
        if cfg.memory_mib is not None or cfg.memory_overcommit != 1.0:
            total = (cfg.memory_mib or int(host[1])) * 1024
            free = int(total * cfg.memory_overcommit) - sum(int(i[2]) for i in running)
        else:
            free = conn.getFreeMemory() // 1024
        vcpus = int(int(host[2]) * cfg.cpu_overcommit) - sum(int(i[3]) for i in running)
        return node_facts(cfg, max(0, free), migrates=conn.getType() != "TEST",
                          free_vcpus=max(0, vcpus))

    # ------------------------------------------------------------ reading

    def scan(self) -> Scan:
        """Every managed domain, plus VM-named domains without the marker (conflicts)."""
        records: list[DomainRecord] = []
        conflicts: list[ObjectKey] = []
        try:
            domains = _statuses(self.conn())
        except libvirt.libvirtError as exc:
            raise NodeError(f"{self.where()}: listing domains failed: {exc}") from exc
        self._definitions.begin()
        for dom, status in domains:
            try:
                name = dom.name()
                owner, definition = self._definitions.read(
                    name, dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE),
                    partial(self._readable, domain=name))
                if owner is not None and not self._mine(owner):
                    continue  # another node entry's domain on a shared daemon
                if owner is None or definition is None or not self._readable(owner, name):
                    parsed = parse_domain_name(name)
                    if parsed is not None:
                        conflicts.append(ObjectKey(VM_KIND, *parsed))
                    continue
                records.append(_read_record(dom, owner, definition, status))
            except libvirt.libvirtError as exc:
                # Undefined between the listing and the read: it no longer exists.
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    continue
                raise NodeError(f"{self.where()}: reading domain {dom.name()} failed: "
                                f"{exc}") from exc
            except VirtsyncError as exc:
                raise NodeError(f"{self.where()}: {exc}") from exc
        self._definitions.end()
        listed = {r.key for r in records}
        self._disk_memo = {k: v for k, v in self._disk_memo.items() if k in listed}
        return Scan(tuple(records), tuple(conflicts))

    def lookup(self, key: ObjectKey) -> Any | None:
        """The VM's domain, None when there is none; NotOurs for an unmarked one."""
        name = domain_name(key.namespace, key.name)
        try:
            dom = self.conn().lookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise NodeError(f"{self.where()}: looking up {name}: {exc}") from exc
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        root = _parsed(xml)
        owner = parse_owner_metadata(root)
        # record() of this same text (observe_keys: right after) parses it no more
        self._looked_up = {name: (xml, root)}
        if owner is None or not owner.is_ours or owner.key != ObjectKey(
            VM_KIND, key.namespace, key.name
        ):
            raise NotOurs(
                f"{self.where()}: domain {name} exists but does not carry virtsync's owner "
                f"marker for {key.namespace}/{key.name}; it is left untouched"
            )
        if not self.scope.manages(owner):
            raise NotOurs(
                f"{self.where()}: domain {name} is managed by another virtsync installation "
                f"({owner.installation or 'no id, not in this inventory'}); it is left "
                "untouched"
            )
        return dom if self._mine(owner) else None

    def _mine(self, owner: OwnerMetadata) -> bool:
        return owns(owner.node, self.config.name, self.co_tenants)

    def _readable(self, owner: OwnerMetadata | None, domain: str) -> bool:
        """Whether a scan reads the domain as one of this node's managed VMs (rules 3
        and 18), so its definition is parsed: otherwise only its marker is."""
        return owner is not None and self._mine(owner) and self.scope.manages(owner) \
            and _named_for(domain, owner)

    def record(self, dom: Any) -> DomainRecord:
        name, xml = dom.name(), dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        parsed = self._looked_up.pop(name, None)
        owner, definition = self._definitions.read(
            name, xml, lambda o: o is not None,
            parsed[1] if parsed is not None and parsed[0] == xml else None)
        assert owner is not None and definition is not None  # lookup() checked it
        return _read_record(dom, owner, definition)

    # ------------------------------------------------------------ writing

    def set_runtime(self, dom: Any, rt: RuntimeRecord) -> None:
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if dom.isActive():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, runtime_xml(rt),
                        RUNTIME_PREFIX, RUNTIME_NS, flags)

    def missing_claims(self, vm: VmSpec, sizes: Mapping[str, int]) -> list[str]:
        missing = []
        for vol in vm.volumes:
            if vol.kind in ("persistentVolumeClaim", "dataVolume") and vol.claim_name:
                if vol.claim_name not in sizes and not self.storage.claim_path(
                    vm.namespace, vol.claim_name
                ).exists():
                    missing.append(vol.claim_name)
        return missing

    def checked_claims(self, spec: VmSpec, refs: Mapping[ObjectKey, Manifest]) -> dict[str, int]:
        """The VM's claim sizes (see claim_sizes); ClaimNotFound when one of its claims is
        neither on this node nor sized by a DataVolume."""
        sizes = claim_sizes(spec, self._datavolumes(refs, spec.namespace))
        missing = self.missing_claims(spec, sizes)
        if missing:
            raise ClaimNotFound(
                f"{spec.namespace}/{spec.name}: claim(s) {', '.join(missing)} not found on "
                f"{self.where()} and no DataVolume declares a size"
            )
        return sizes

    def _datavolumes(self, refs: Mapping[ObjectKey, Manifest], namespace: str) -> list[Manifest]:
        """The DataVolumes of `namespace` in `refs`, in its order. Indexed once per refs
        mapping: every create of a run renders with the same one, and scanning it per VM
        cost O(N²) at 10,000 VMs (issue 13)."""
        memo = self._dv_index
        if memo is None or memo[0] is not refs or memo[1] != len(refs):
            index: dict[str, list[Manifest]] = {}
            for k, m in refs.items():
                if k.kind == "DataVolume":
                    index.setdefault(k.namespace, []).append(m)
            memo = self._dv_index = (refs, len(refs), index)
        return memo[2].get(namespace, [])

    def prepare_creates(self, vms: Sequence[tuple[Manifest, Mapping[str, JSON]]],
                        refs: Mapping[ObjectKey, Manifest]) -> None:
        """Before a batch of defines (issue 13), what `render` would write first for these
        VMs (manifest, expanded body), each kind in one durable step: their identities,
        then their new cloud-init seeds (rules 17: both on disk before any domain exists).
        A VM `render` would refuse before its identity (a claim not found) is left out,
        and so is one whose identity or seed cannot be made: its own define reports why,
        as before. Their new disk files start being made in a small pool, as temp files
        only their own define turns into disks (node.storage.staging)."""
        wanted = []
        self._specs = {}
        self.staged.discard()  # an earlier batch's, that no step took
        for vm, expanded in vms:
            try:
                spec = VmSpec.from_body(vm.namespace, vm.name, expanded)
                sizes = self.checked_claims(spec, refs)
            except VirtsyncError:
                continue
            self._specs[vm.key] = (expanded, spec)
            wanted.append((vm.key, spec))
            # Their disk files start now, in plan order; each define takes its own.
            for target, make, inputs in new_disk_files(spec, self.storage, sizes):
                self.staged.start(vm.key, target, make, inputs)
        identities = self.identities.ensure_many(wanted)
        seeds = []
        for key, spec in wanted:
            if key in identities:
                with contextlib.suppress(VirtsyncError):
                    seeds.extend(new_seeds(spec, identities[key], self.storage))
        from node.storage.cloudinit import write_seeds

        with contextlib.suppress(OSError):  # then each define writes its own, as before
            write_seeds(seeds)

    def define(self, vm: Manifest, expanded: Mapping[str, JSON], **kw: Any) -> Any:
        """Create what the VM needs on this node and (re)define its domain."""
        return self.define_xml(self.render(vm, expanded, **kw), vm.key)

    def define_xml(self, xml: str, key: ObjectKey) -> Any:
        try:
            return self.conn().defineXML(xml)
        except libvirt.libvirtError as exc:
            raise NodeError(f"{self.where()}: defining {key.namespace}/{key.name}: "
                            f"{exc}") from exc

    def render(
        self,
        vm: Manifest,
        expanded: Mapping[str, JSON],
        *,
        revision: str,
        refs: Mapping[ObjectKey, Manifest],
        runtime: RuntimeRecord,
        generation: int,
        fresh_scratch: bool,
    ) -> str:
        """Create what the VM needs on this node (identity, disks, checks of its networks)
        and return its domain XML; nothing is defined yet."""
        from node.domain.builder import build_domain  # only a define renders (issue 13)
        from node.domain.xml import to_xml

        hit = self._specs.pop(vm.key, None)
        spec = hit[1] if hit and hit[0] is expanded else \
            VmSpec.from_body(vm.namespace, vm.name, expanded)
        sizes = self.checked_claims(spec, refs)
        identity = self.identities.ensure(vm.key, spec)
        prepared = prepare_disks(spec, identity, self.storage, sizes=sizes,
                                 fresh_scratch=fresh_scratch, staged=self.staged)
        interfaces = resolve_interfaces(spec, identity, self.networks)
        problems = check_sources(self.conn(), interfaces)
        if problems:
            raise NodeError(f"{self.where()}: " + "; ".join(
                f"interface {p.interface}: {p.message}" for p in problems))
        owner = OwnerMetadata(vm.namespace, vm.name, revision, spec_hash(spec), generation,
                              installation=self.scope.installation, node=self.config.name)
        facts = self.facts()
        Path(facts.console_log_dir).mkdir(parents=True, exist_ok=True)
        element = build_domain(spec, identity, facts, prepared.disks, interfaces,
                               prepared.kernel, owner)
        effective = Effective(
            sockets=spec.cpu.sockets, cores=spec.cpu.cores, threads=spec.cpu.threads,
            memory_kib=spec.memory_kib, macs={i.name: i.mac for i in interfaces},
        )
        if not runtime.created:
            runtime = replace(runtime, created=self.clock())
        decorate(element, applied_element(vm.body, effective), runtime)
        return to_xml(element, owned=True)  # built here, dropped after

    def start(self, dom: Any) -> None:
        """Start the domain (no-op when running) once no running domain holds its disks."""
        if dom.isActive():
            return
        own = dom.name()
        root = parse_root(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        used = files_of_running_domains(self.conn())
        for src in root.iterfind("devices/disk/source"):
            path = src.get("file")
            holder = used.get(str(Path(path).resolve())) if path else None
            shareable = src.getparent().find("shareable") is not None  # type: ignore[union-attr]
            if holder is not None and holder != own and not shareable:
                raise NodeError(
                    f"{self.where()}: disk {path} is in use by running domain {holder}; a disk "
                    "is never attached to two running domains"
                )
        rt = self.record(dom).runtime
        self.set_runtime(dom, replace(rt, intent=INTENT_NONE, last_start=self.clock()))
        try:
            dom.create()
        except libvirt.libvirtError as exc:
            raise NodeError(f"{self.where()}: starting {own}: {exc}") from exc

    def stop(self, dom: Any, grace: int, *, force: bool, intent: str) -> StopResult:
        """Record the intent (so the agent does not restart it), then stop gracefully."""
        from node.lifecycle.stop import graceful_stop

        rt = self.record(dom).runtime
        self.set_runtime(dom, replace(rt, intent=intent))
        try:
            return graceful_stop(dom, grace, force=force)
        except libvirt.libvirtError as exc:
            raise NodeError(f"{self.where()}: stopping {dom.name()}: {exc}") from exc

    def undefine(self, dom: Any) -> None:
        root = parse_root(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        flags = 0
        if root.find("os/nvram") is not None or root.find("os").get("firmware") == "efi":  # type: ignore[union-attr]
            flags |= libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
        if dom.hasManagedSaveImage(0):
            flags |= libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        try:
            dom.undefineFlags(flags)
        except libvirt.libvirtError as exc:
            raise NodeError(f"{self.where()}: undefining {dom.name()}: {exc}") from exc

    def disk_files(self, key: ObjectKey, applied_body: Mapping[str, JSON],
                   used: Mapping[str, str]) -> tuple[DiskFile, ...]:
        """The files the VM's domain uses (`used`: disk name → file, from its definition)
        with their volume's source as applied, whether each exists, and leftovers in its
        own directory: what a plan needs to report a missing disk and to prune (rule 13).
        hostDisk files are the operator's: never listed. Lookups and stats only."""
        refs, vm_dir = self._disk_refs(key, applied_body, used)
        out = [DiskFile(name, source, path, os.path.exists(path), claim)
               for name, source, path, claim in refs]
        if vm_dir is not None:
            out += [DiskFile("", "file", p, True) for p in own_leftovers(vm_dir, used.values())]
        return tuple(out)

    def _disk_refs(self, key: ObjectKey, applied_body: Mapping[str, JSON],
                   used: Mapping[str, str]) -> _DiskRefs:
        """What `disk_files` reads from the applied body and the definition, the same
        while both are the same objects (an unchanged definition's parse is reused:
        node.cluster.definitions); only the file system is asked again every time."""
        known = self._disk_memo.get(key)
        if known is not None and known[0] is applied_body and known[1] is used:
            return known[2]
        volumes = VmSpec(key.namespace, key.name, applied_body).raw_volumes
        refs: list[tuple[str, str, str, str]] = []
        for name, path in sorted(used.items()):
            vol = volumes.get(name, {})
            source = next((k for k in vol if k in CLAIM_SOURCES or k in OWN_FILES), "")
            if not source:
                continue
            ref = vol.get(source)
            claim = ref.get("claimName", ref.get("name", "")) if isinstance(ref, Mapping) else ""
            refs.append((name, source, path, claim if source in CLAIM_SOURCES else ""))
        # Checked names, joined but not resolved (cheap: this runs for every VM on every
        # observe); remove_files confines each path before deleting.
        try:
            vm_dir: str | None = os.path.join(
                self.storage.storage_dir, safe_component(key.namespace, "namespace"), "vms",
                safe_component(key.name, "VM name"))
        except VirtsyncError:
            vm_dir = None
        found = (tuple(refs), vm_dir)
        self._disk_memo[key] = (applied_body, used, found)
        return found

    def remove_files(self, key: ObjectKey, paths: tuple[str, ...]) -> tuple[str, ...]:
        """Delete exactly the planned files (call after undefining the VM's domain) and
        forget the VM's identity."""
        in_use = files_of_running_domains(self.conn(), defined_too=True)
        removed = remove_files(self.storage, key.namespace, key.name, paths, in_use=in_use)
        self.identities.forget(key)
        return removed
