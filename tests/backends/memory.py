"""An in-memory backend that implements the Backend protocol and nothing else.

It proves a backend plugs in with one module and one registry entry (issue 9): the
tests register it (`registry.register`), a tree's Cluster object selects it with
`spec.backend: memory`, and validate → plan → apply run through the CLI unchanged. Its
"hosts" are `STORE`, which outlives each CLI run; `CALLS` records every action.

Its own rule: vCPU count is live here (a hot-add), where libvirt needs a restart — so a
plan shows which backend's rules classified it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from node.identity.metadata import Scope
from reconciler.backends.base import (
    BackendError,
    BackendProfile,
    LiveObject,
    NodeAgent,
    Observation,
    VMStatus,
)
from reconciler.core.model import JSON, Manifest, ObjectKey, PrintableStatus
from reconciler.core.power import run_strategy, starts_on_create
from reconciler.core.sensitive import digest_sensitive
from reconciler.planning.classify import ClassificationProfile, Disruption, Rule

HOT_ADD = "vCPUs hot-added by the memory backend"

PROFILE = BackendProfile(
    classification=ClassificationProfile(
        "memory",
        own_rules=(Rule("spec.template.spec.domain.cpu.cores", Disruption.LIVE, HOT_ADD),),
    ),
    kinds=frozenset({"VirtualMachine"}),
)


@dataclass
class Stored:
    api_version: str
    body: Mapping[str, JSON]
    revision: str
    running: bool


STORE: dict[ObjectKey, Stored] = {}
CALLS: list[tuple[str, ObjectKey]] = []
CLOSED: list[bool] = []  # one entry per backend closed


class MemoryBackend:
    profile = PROFILE

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def close(self) -> None:
        CLOSED.append(True)

    def agents(self, *, every_installation: bool = False) -> dict[str, NodeAgent]:
        return {}

    def observe(self) -> Observation:
        objects = tuple(
            LiveObject(key=k, api_version=s.api_version, body=s.body, node="memory",
                       revision=s.revision,
                       status=VMStatus(PrintableStatus.RUNNING if s.running
                                       else PrintableStatus.STOPPED,
                                       ready=s.running, node="memory"))
            for k, s in sorted(STORE.items()))
        return Observation(objects)

    def _store(self, vm: Manifest, revision: str, running: bool) -> None:
        # Sensitive values leave a backend only as digests (the protocol's contract).
        STORE[vm.key] = Stored(vm.api_version, digest_sensitive(dict(vm.body)), revision,
                               running)

    def _get(self, key: ObjectKey) -> Stored:
        if key not in STORE:
            raise BackendError(f"{key}: not in memory")
        return STORE[key]

    def create(self, vm: Manifest, *, revision: str,
               refs: Mapping[ObjectKey, Manifest], node: str | None = None) -> None:
        CALLS.append(("create", vm.key))
        self._store(vm, revision, starts_on_create(run_strategy(vm.body)))

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
        self._store(vm, revision, running)


def open_backend(manifests: Sequence[Manifest], scope: Scope) -> MemoryBackend:
    return MemoryBackend(scope)
