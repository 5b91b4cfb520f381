"""The plan's model: the live side (`Observed`) and the immutable `Plan` with its changes,
summary and fingerprints. Values only; `reconciler.planning.plan` computes a Plan,
`reconciler.planning.plan_codec` reads and writes its JSON form."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from reconciler.core.digest import content_hash as content_hash
from reconciler.core.model import JSON, Action, DiffOp, DiskFile, Manifest, ObjectKey, VirtsyncError
from reconciler.planning.classify import Disruption
from reconciler.planning.ownership import DiskFate
from reconciler.tree.desired import body_hash

ACTIONS = tuple(Action)


# --- the live side --------------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    """One live object: its manifest (as the live system reports it), the node it is on
    and whether it is running, when known. In git mode node and running are None.
    `operator_stop`: held off by `virtsync stop`; `backoff`: held off by the lifecycle
    agent after repeated failures (rule 16: a plan does not start either)."""

    manifest: Manifest
    node: str | None = None
    running: bool | None = None
    disks: tuple[DiskFile, ...] = ()  # the files it uses on its node, when known
    operator_stop: bool = False
    backoff: bool = False
    known_hash: str = field(default="", compare=False, repr=False)  # body_hash, if known

    @property
    def key(self) -> ObjectKey:
        return self.manifest.key

    @cached_property  # the live hash and the unchanged memo both ask (issue 13)
    def body_hash(self) -> str:
        return self.known_hash or body_hash(self.manifest.body)


# --- the plan model -------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    """One changed field. Values are masked."""

    path: str
    op: DiffOp
    before: JSON
    after: JSON
    disruption: Disruption
    reason: str
    identity: bool = False
    sensitive: bool = False
    forces: bool = False  # this field sets the object's disruption class


@dataclass(frozen=True)
class NodePlacement:
    """Where the VM will run (`node`) and where it runs now (`previous_node`, None for a
    VM without a domain); `reason` says why nothing fits (ErrorUnschedulable)."""

    node: str | None
    previous_node: str | None = None
    reason: str = ""

    @property
    def moves(self) -> bool:
        return None not in (self.node, self.previous_node) and self.node != self.previous_node


@dataclass(frozen=True)
class ObjectChange:
    key: ObjectKey
    api_version: str
    actions: tuple[Action, ...]
    disruption: Disruption
    cause: str  # why the object has its class ("new object", a field path and reason, ...)
    fields: tuple[FieldChange, ...]
    unchanged: int  # fields of the desired object that do not change
    source: str  # file the object comes from (desired side, else live side)
    wave: int = 0
    previous_key: ObjectKey | None = None  # set when the object is renamed
    identity_change: bool = False
    disks: tuple[DiskFate, ...] = ()  # a deleted VM's files: deleted or kept
    placement: NodePlacement | None = None  # None: the backend reports no nodes

    @property
    def deleted_files(self) -> tuple[str, ...]:
        return tuple(d.path for d in self.disks if d.delete)

    @property
    def is_delete(self) -> bool:
        return Action.DELETE in self.actions


@dataclass(frozen=True)
class UnpinnedIdentity:
    key: ObjectKey
    path: str
    what: str


@dataclass(frozen=True)
class Summary:
    create: int = 0
    update: int = 0
    restart: int = 0
    replace: int = 0
    delete: int = 0
    data_loss: int = 0
    unchanged: int = 0
    migrate: int = 0  # live migrations (issue 10); last, so older positional uses hold

    @property
    def changes(self) -> int:
        return (self.create + self.update + self.restart + self.migrate + self.replace
                + self.delete)


@dataclass(frozen=True)
class Fingerprints:
    """What the plan was computed from; apply refuses a plan whose inputs moved on."""

    desired_commit: str | None
    desired_tree: str | None
    desired_hash: str
    live_source: str
    live_hash: str


@dataclass(frozen=True)
class Plan:
    changes: tuple[ObjectChange, ...]
    summary: Summary
    fingerprints: Fingerprints
    backend: str  # the name of the classification profile it was planned with
    unpinned: tuple[UnpinnedIdentity, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.changes


def ordered_actions(actions: Iterable[Action]) -> tuple[Action, ...]:
    present = set(actions)
    return tuple(a for a in ACTIONS if a in present)


# --- fingerprints --------------------------------------------------------------------


def check_fresh(plan: Plan, current: Fingerprints) -> None:
    """Refuse a saved plan computed from other inputs than the current ones."""
    saved = plan.fingerprints
    if saved.desired_hash != current.desired_hash:
        raise VirtsyncError("stale plan: the desired tree changed since the plan was made "
                            f"({saved.desired_hash[:19]} → {current.desired_hash[:19]}); "
                            "plan again")
    if saved.live_hash != current.live_hash:
        raise VirtsyncError("stale plan: live state changed since the plan was made "
                            f"({saved.live_source}); plan again")
