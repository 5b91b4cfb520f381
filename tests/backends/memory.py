"""An in-memory backend that implements the Backend protocol and nothing else.

It proves a backend plugs in with one module and one registry entry (issue 9): the
tests register it (`registry.register`), a tree's Cluster object selects it with
`spec.backend: memory`, and validate → plan → apply run through the CLI unchanged. Its
"hosts" are `STORE`, which outlives each CLI run; `CALLS` records every action.

Its own rule: vCPU count is live here (a hot-add), where libvirt needs a restart — so a
plan shows which backend's rules classified it.

When the tree's Cluster object lists nodes, it reports them (capacity: `memoryMiB`, else
64 GiB) so the plan places VMs, and it executes `migrate` (issue 10): a running VM moves
to the target node and keeps running, so plan → apply of a live migration runs end to
end through the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from node.cluster.config import cluster_from_manifests, node_facts
from node.identity.metadata import Scope
from reconciler.backends.base import (
    BackendError,
    BackendProfile,
    LiveObject,
    NodeAgent,
    Observation,
    VMStatus,
)
from reconciler.core.migration import (
    MigrationMethod,
    MigrationOutcome,
    MigrationPolicy,
    MigrationProgress,
)
from reconciler.core.model import JSON, Manifest, ObjectKey, PrintableStatus
from reconciler.core.power import run_strategy, starts_on_create
from reconciler.core.sensitive import digest_sensitive
from reconciler.planning.classify import ClassificationProfile, Disruption, Rule
from reconciler.planning.schedule import NodeCapacity

HOT_ADD = "vCPUs hot-added by the memory backend"

PROFILE = BackendProfile(
    classification=ClassificationProfile(
        "memory",
        own_rules=(Rule("spec.template.spec.domain.cpu.cores", Disruption.LIVE, HOT_ADD),),
        live_migration=True,
    ),
    kinds=frozenset({"VirtualMachine"}),
)


@dataclass
class Stored:
    api_version: str
    body: Mapping[str, JSON]
    revision: str
    running: bool
    node: str = "memory"


STORE: dict[ObjectKey, Stored] = {}
CALLS: list[tuple[str, ObjectKey]] = []
CLOSED: list[bool] = []  # one entry per backend closed
MIGRATIONS: list[tuple[ObjectKey, str, str, MigrationPolicy]] = []
DEFAULT_MIB = 64 * 1024


def _nodes(manifests: Sequence[Manifest]) -> tuple[NodeCapacity, ...]:
    """The Cluster object's nodes when it lists any (none: no placement step)."""
    listed = any(m.kind == "Cluster" and isinstance(m.body.get("spec"), Mapping)
                 and m.body["spec"].get("nodes") for m in manifests)
    if not listed:
        return ()
    return tuple(node_facts(n, (n.memory_mib or DEFAULT_MIB) * 1024)
                 for n in cluster_from_manifests(manifests).nodes)


class MemoryBackend:
    profile = PROFILE

    def __init__(self, scope: Scope, nodes: tuple[NodeCapacity, ...] = ()) -> None:
        self.scope = scope
        self.nodes = nodes

    def close(self) -> None:
        CLOSED.append(True)

    def agents(self, *, every_installation: bool = False) -> dict[str, NodeAgent]:
        return {}

    def observe(self) -> Observation:
        objects = tuple(
            LiveObject(key=k, api_version=s.api_version, body=s.body, node=s.node,
                       revision=s.revision,
                       status=VMStatus(PrintableStatus.RUNNING if s.running
                                       else PrintableStatus.STOPPED,
                                       ready=s.running, node=s.node))
            for k, s in sorted(STORE.items()))
        return Observation(objects, nodes=self.nodes)

    def _store(self, vm: Manifest, revision: str, running: bool,
               node: str | None = None) -> None:
        # Sensitive values leave a backend only as digests (the protocol's contract).
        where = node or (STORE[vm.key].node if vm.key in STORE else "memory")
        STORE[vm.key] = Stored(vm.api_version, digest_sensitive(dict(vm.body)), revision,
                               running, where)

    def _get(self, key: ObjectKey) -> Stored:
        if key not in STORE:
            raise BackendError(f"{key}: not in memory")
        return STORE[key]

    def create(self, vm: Manifest, *, revision: str,
               refs: Mapping[ObjectKey, Manifest], node: str | None = None) -> None:
        CALLS.append(("create", vm.key))
        self._store(vm, revision, starts_on_create(run_strategy(vm.body)), node)

    def update(self, vm: Manifest, *, revision: str, refs: Mapping[ObjectKey, Manifest],
               restart: bool, grace_period: int | None = None, force: bool = False,
               node: str | None = None) -> None:
        CALLS.append(("restart" if restart else "update", vm.key))
        self._store(vm, revision, self._get(vm.key).running)

    def start(self, key: ObjectKey) -> None:
        CALLS.append(("start", key))
        self._get(key).running = True

    def stop(self, key: ObjectKey, *, grace_period: int | None = None,
             force: bool = False) -> None:
        CALLS.append(("stop", key))
        self._get(key).running = False

    def restart(self, key: ObjectKey, *, grace_period: int | None = None,
                force: bool = False) -> None:
        CALLS.append(("restart", key))
        self._get(key)

    def delete(self, key: ObjectKey, *, delete_disks: bool, grace_period: int | None = None,
               force: bool = False, files: Sequence[str] = ()) -> None:
        CALLS.append(("delete", key))
        self._get(key)
        del STORE[key]

    def replace(self, old: ObjectKey, vm: Manifest, *, revision: str,
                refs: Mapping[ObjectKey, Manifest], grace_period: int | None = None,
                force: bool = False, node: str | None = None) -> None:
        CALLS.append(("replace", vm.key))
        running = STORE.pop(old).running if old in STORE else False
        self._store(vm, revision, running, node)

    def migrate(self, key: ObjectKey, *, source: str, target: str, policy: MigrationPolicy,
                progress: Callable[[MigrationProgress], None] | None = None
                ) -> MigrationOutcome:
        CALLS.append(("migrate", key))
        stored = self._get(key)
        if stored.node != source or not stored.running:
            raise BackendError(f"{key}: not running on {source}")
        MIGRATIONS.append((key, source, target, policy))
        stored.node = target  # keeps running: a live migration
        if progress is not None:
            progress(MigrationProgress(0.0, 1, 0, 1))
        return MigrationOutcome(0.0, 0, MigrationMethod.LIVE)

    def cancel_migration(self, key: ObjectKey) -> bool:
        self._get(key)
        return False  # a memory migration is instant: never one to cancel


def open_backend(manifests: Sequence[Manifest], scope: Scope) -> MemoryBackend:
    return MemoryBackend(scope, _nodes(manifests))
