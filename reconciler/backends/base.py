"""The backend protocol: how the reconciler sees and changes live VMs.

A backend observes live state and executes one planned action per call. It never
decides anything: apply hands it exactly the actions of the plan. Backends import only
`reconciler.core.model`, the classification types and `reconciler.planning.schedule`'s node facts
(and their own driver libraries / node components), never each other. What differs per
backend is its `BackendProfile` and its `open_backend`, found through
`reconciler.backends.registry` (docs/backends.md).

Contract every backend keeps (the design's safety rules):
- `observe()` raises BackendError when live state cannot be read (rule 2: a failed
  observation is never "nothing exists"); it returns only objects carrying virtsync's
  owner marker (rule 3), and reports unmanaged objects whose name collides with a
  managed key in `conflicts` so they are never touched.
- Sensitive values never leave the backend in clear text: `LiveObject.body` holds them
  replaced by `sensitive_digest(value)` (see `reconciler.core.sensitive`), so a diff can say
  "(sensitive value changed)" without knowing the secret.
- `stop` is graceful (ACPI, wait the grace period) unless `force=True`; a backend that
  cannot confirm the guest is off raises BackendError rather than pretending.
- Every call is idempotent: calling `create` for an object that already exists with the
  same owner marker and identity adopts it (needed for crash recovery, rule 7).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from reconciler.core.migration import MigrationOutcome, MigrationPolicy, MigrationProgress
from reconciler.core.model import (
    JSON,
    DiskFile,
    Manifest,
    ObjectKey,
    PrintableStatus,
    VirtsyncError,
)
from reconciler.core.status import VMStatus

if TYPE_CHECKING:  # types only: planning's modules are not a backend's start-up cost
    from reconciler.planning.classify import ClassificationProfile
    from reconciler.planning.schedule import NodeCapacity


class BackendError(VirtsyncError):
    """Live state could not be read or an action failed. Never swallowed."""


@dataclass(frozen=True)
class LiveIdentity:
    uuid: str = ""
    serial: str = ""
    macs: Mapping[str, str] = field(default_factory=dict)  # interface name → MAC


@dataclass(frozen=True)
class LiveObject:
    """One managed object as observed: the applied spec plus what the host filled in."""

    key: ObjectKey
    api_version: str
    body: Mapping[str, JSON]
    node: str = ""
    revision: str = ""  # git commit last applied
    spec_hash: str = ""
    identity: LiveIdentity = field(default_factory=LiveIdentity)
    status: VMStatus = field(default_factory=lambda: VMStatus(PrintableStatus.UNKNOWN))
    # The files its disks use and leftovers in its own directory (what prune may delete,
    # rule 13; a missing one is reported, never "up to date").
    disks: tuple[DiskFile, ...] = ()
    # reconciler.tree.desired.body_hash(body), when the backend already has it (a
    # watch's resync reuses an unchanged domain's body; issue 13); "" when unknown
    body_hash: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class Observation:
    objects: tuple[LiveObject, ...]
    # Keys that exist live WITHOUT virtsync's owner marker: never changed or pruned.
    conflicts: tuple[ObjectKey, ...] = ()
    # The nodes VMs can be placed on, as measured now; empty for a backend that places
    # VMs itself (then the plan has no placement step).
    nodes: tuple[NodeCapacity, ...] = ()
    # What the user should know about how it was observed (KubeVirt: the plan compared
    # with the local normalizer because the server-side dry run was not possible).
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackendProfile:
    """What the core needs to know about a backend without opening it: how its changes
    are classified, and which kinds it applies and observes (the other kinds are
    configuration kept in git and the inventory, never sent to the backend)."""

    classification: ClassificationProfile
    kinds: frozenset[str]
    # A backend whose rules depend on the tree's Cluster config (KubeVirt: its rollout
    # strategy) returns the profile for that config's `spec`; None: one profile for all.
    configure: Callable[[Mapping[str, JSON]], BackendProfile] | None = field(
        default=None, compare=False)
    # Whether a plan may be made from desired bodies whose secrets were read digested
    # (rule 10; the cache's fast path): not where the backend sends the desired object
    # somewhere to compare (KubeVirt's server-side dry run), since a digest is no value.
    plans_from_digests: bool = True

    @property
    def name(self) -> str:
        return self.classification.name

    def for_cluster(self, spec: Mapping[str, JSON]) -> BackendProfile:
        """This backend's profile for a tree whose Cluster object has this `spec`."""
        return self.configure(spec) if self.configure is not None else self


@runtime_checkable
class ServerSideApplier(Protocol):
    """A backend that applies with Kubernetes server-side apply (KubeVirt). Setting
    `force_conflicts` (`virtsync apply --force-conflicts`, only on request) lets it take
    over fields another field manager owns; by default such a conflict fails the step."""

    force_conflicts: bool


@runtime_checkable
class InventoryKeeper(Protocol):
    """A backend that keeps each source's inventory itself (KubeVirt: a ConfigMap in the
    cluster) instead of the state directory. The data is the inventory's JSON document."""

    def read_inventory(self, source: str) -> bytes | None:
        """The stored document, or None when there is none yet (nothing applied)."""
        ...

    def write_inventory(self, source: str, data: bytes) -> None: ...

    def inventory_location(self, source: str) -> str:
        """Where it is kept, for messages."""
        ...


class NodeAgent(Protocol):
    """A per-node helper a backend runs beside reconciling (libvirt: the lifecycle agent
    that enforces run strategies on libvirt events). Created stopped."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@runtime_checkable
class Backend(Protocol):
    """One verb per method; each executes exactly one planned action."""

    profile: BackendProfile

    def close(self) -> None:
        """Release connections. The backend is not used afterwards."""
        ...

    def agents(self, *, every_installation: bool = False) -> Mapping[str, NodeAgent]:
        """The node agents this backend runs, by node name (none: an empty mapping).
        `every_installation` lets them act on other installations' VMs too (rule 18)."""
        ...

    def observe(self) -> Observation: ...

    def create(self, vm: Manifest, *, revision: str,
               refs: Mapping[ObjectKey, Manifest], node: str | None = None) -> None:
        """Define the VM (disks, identity, domain) and start it if its run strategy says so.

        `refs` holds the other desired objects it may reference (instancetypes,
        preferences, DataVolumes, the Cluster config); `node` is where the plan placed it
        (None: the backend places it, with the same scheduler)."""
        ...

    def update(self, vm: Manifest, *, revision: str, refs: Mapping[ObjectKey, Manifest],
               restart: bool, grace_period: int | None = None, force: bool = False,
               node: str | None = None) -> None:
        """Apply a changed spec. With `restart`, a running guest is stopped gracefully,
        redefined and started again; without it, only live-applicable changes are made."""
        ...

    def start(self, key: ObjectKey) -> None: ...

    def stop(self, key: ObjectKey, *, grace_period: int | None = None,
             force: bool = False) -> None: ...

    def restart(self, key: ObjectKey, *, grace_period: int | None = None,
                force: bool = False) -> None: ...

    def delete(self, key: ObjectKey, *, delete_disks: bool, grace_period: int | None = None,
               force: bool = False, files: Sequence[str] = ()) -> None:
        """Stop (gracefully) and undefine. With `delete_disks`, exactly the planned
        `files` are deleted (safety rule 13: the plan chose only files the VM owns and
        nothing else references); every other disk is kept."""
        ...

    def replace(self, old: ObjectKey, vm: Manifest, *, revision: str,
                refs: Mapping[ObjectKey, Manifest], grace_period: int | None = None,
                force: bool = False, node: str | None = None) -> None:
        """Undefine `old` and define `vm` again (on `node` when the plan moves it; a
        rename when the keys differ), carrying the identity, the disks and the power
        state over (rule 17). A step that fails leaves the VM with a working domain: the
        old one, restored."""
        ...

    def migrate(self, key: ObjectKey, *, source: str, target: str, policy: MigrationPolicy,
                progress: Callable[[MigrationProgress], None] | None = None
                ) -> MigrationOutcome:
        """Live-migrate the running VM from node `source` to node `target` under
        `policy` (issue 10): defined on the target and undefined on the source only on
        success; a failure or timeout leaves the guest running on the source (raise
        BackendError then). `progress` gets samples while it runs."""
        ...

    def cancel_migration(self, key: ObjectKey) -> bool:
        """Abort the VM's running migration (the guest stays on the source); False when
        none is running."""
        ...
