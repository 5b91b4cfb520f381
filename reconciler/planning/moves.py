"""A planned node change (a selector edit, a node cordoned): live migration or a replace,
and why. Pure; `reconciler.planning.plan` asks it for every VM whose placement moves.

A move off a cordoned node (`schedulable: false`) is a drain and follows the VM's
eviction strategy (`reconciler.planning.eviction`): a VM that must not be shut down
(LiveMigrate and not migratable, or External) stays where it is, saying why; any other
move of a running VM is a live migration when it is migratable, else a replace whose
reason names KubeVirt's condition reason."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from reconciler.core.expand import expand
from reconciler.core.migration import (
    MigrationPolicy,
    NotMigratable,
    cluster_policy,
    eviction_strategy,
    policy_for,
)
from reconciler.core.model import Manifest, ObjectKey
from reconciler.core.power import run_strategy
from reconciler.core.vmspec import VmSpec
from reconciler.planning.classify import Disruption
from reconciler.planning.diff import NODE, FieldDiff, plain_path
from reconciler.planning.plan_model import Observed
from reconciler.planning.schedule import DRAIN_HELD, NodeCapacity, Placement, place, request_of

if TYPE_CHECKING:  # imported where a move is weighed: a plan where nothing moves does not
    # load the migratability and eviction rules (issue 13)
    from reconciler.planning.eviction import DrainStep
    from reconciler.planning.migratable import Migratability

CLUSTER_KIND = "Cluster"
TEMPLATE = ("spec", "template", "spec")
PLACEMENT_FIELDS = frozenset({"nodeSelector", "affinity"})


@dataclass(frozen=True)
class MoveContext:
    """What deciding a move needs: the nodes as observed, the Cluster's migration policy
    and the desired objects a VM references (instancetypes may set its CPU model)."""

    nodes: Mapping[str, NodeCapacity]
    policy: MigrationPolicy = field(default_factory=MigrationPolicy)
    refs: Mapping[ObjectKey, Manifest] = field(default_factory=dict)
    live: bool = True  # the backend executes `migrate` (its profile's live_migration)

    def cordoned(self, node: str | None) -> bool:
        found = self.nodes.get(node or "")
        return found is not None and not found.schedulable


def move_context(desired: Sequence[Manifest], nodes: Sequence[NodeCapacity], *,
                 live: bool = True) -> MoveContext:
    """The context for a desired tree: its Cluster object's `spec.migration`."""
    cluster = next((m for m in desired if m.kind == CLUSTER_KIND), None)
    policy = cluster_policy(cluster.body if cluster else None,
                            cluster.source.file if cluster else "Cluster")
    return MoveContext({n.name: n for n in nodes}, policy, {m.key: m for m in desired}, live)


def vm_migratability(vm: Manifest, source: str | None, target: str | None,
                     ctx: MoveContext) -> Migratability:
    """Whether `vm` (as desired) can live-migrate from `source` to `target`."""
    from reconciler.planning.migratable import Blocker, Migratability, migratability

    if not ctx.live:
        return Migratability((Blocker(NotMigratable.UNSUPPORTED,
                                      "this backend does not live-migrate yet"),))
    body = expand(vm, ctx.refs)
    spec = VmSpec.from_body(vm.namespace, vm.name, body)
    return migratability(spec, body, ctx.nodes.get(source or ""),
                         ctx.nodes.get(target or ""), policy_for(vm.body, ctx.policy))


def migration_targets(vm: Manifest, source: str, ctx: MoveContext
                      ) -> tuple[tuple[str, ...], Migratability]:
    """The nodes `vm` could live-migrate to from `source` now (the other schedulable
    nodes it fits on, by the placement rules) and the verdict: the first target's when
    one works, else the first candidate's blockers (KubeVirt's LiveMigratable condition,
    computed before the fact)."""
    from reconciler.planning.migratable import Blocker, Migratability

    req = replace(request_of(vm, ctx.refs), will_run=True)
    fits = [n.name for n in ctx.nodes.values() if n.name != source
            and place([n], req).scheduled]
    if not fits:
        return (), Migratability((Blocker(NotMigratable.NO_TARGET,
                                          f"no node other than {source} can hold it"),))
    verdicts = {t: vm_migratability(vm, source, t, ctx) for t in fits}
    ok = tuple(t for t, v in verdicts.items() if v.migratable)
    return ok, verdicts[ok[0]] if ok else verdicts[fits[0]]


def drain_decision(vm: Manifest, running: bool, verdict: Migratability) -> DrainStep:
    """What draining its cordoned node does to `vm`, by its eviction strategy."""
    from reconciler.planning.eviction import drain_step

    return drain_step(eviction_strategy(vm.body), running=running, migration=verdict,
                      run_strategy=run_strategy(vm.body))


def hold_for_drain(vm: Manifest, obs: Observed, placed: Placement | None,
                   ctx: MoveContext | None) -> Placement | None:
    """The placement, or the VM's current node when it is drained off a cordoned node
    but its eviction strategy keeps it there (LiveMigrate and not migratable: the drain
    blocks; External: left for an external controller)."""
    if ctx is None or placed is None or placed.node in (None, obs.node) \
            or not ctx.cordoned(obs.node):
        return placed
    step = drain_decision(vm, bool(obs.running),
                          vm_migratability(vm, obs.node, placed.node, ctx))
    if step.empties_node:
        return placed
    return Placement(obs.node, f"{DRAIN_HELD} {obs.node}: {step.reason}")


# One classified field change as plan_update scores it:
# (diff, class, effective class, reason, identity).
Scored = tuple[FieldDiff, Disruption, Disruption, str, bool]


def decide_move(scored: list[Scored], vm: Manifest, source: str, target: str,
                ctx: MoveContext) -> tuple[list[Scored], bool]:
    """The `(node)` field of a VM that keeps running: class live (a migration) when the VM
    is migratable and nothing else in the change needs a restart; otherwise it stays a
    replace, its reason saying why not. Returns the rescored fields and whether it
    migrates."""
    from reconciler.planning.eviction import DrainAction

    at = next((i for i, s in enumerate(scored) if s[0].path == (NODE,)), None)
    if at is None:
        return scored, False
    d, cls, effective, reason, identity = scored[at]
    # Scheduling fields that moved the VM are carried out by the move itself.
    carried = {i for i, s in enumerate(scored) if i == at or is_placement_field(s[0])}
    others = max((s[2] for i, s in enumerate(scored) if i not in carried),
                 default=Disruption.NONE)
    verdict = vm_migratability(vm, source, target, ctx)
    out = list(scored)
    if ctx.cordoned(source):
        step = drain_decision(vm, True, verdict)
        if step.action is not DrainAction.MIGRATE:
            out[at] = (d, cls, effective, f"drain of {source}: {step.reason}", identity)
            return out, False
    if not verdict.migratable:
        out[at] = (d, cls, effective, f"{reason}: not live-migratable: {verdict.describe()}",
                   identity)
        return out, False
    if others > Disruption.LIVE:
        out[at] = (d, cls, effective, f"{reason}: live-migratable, but the change also needs "
                                      f"a {others.label}", identity)
        return out, False
    for i in carried:  # the (node) field sets the class; the selector just rides along
        field = out[i]
        cls = Disruption.LIVE if i == at else Disruption.NONE
        why = (f"live migration {source} → {target}: {verdict.describe()}" if i == at
               else f"placement: carried out by the live migration to {target}")
        out[i] = (field[0], cls, cls, why, field[4])
    return out, True


def is_placement_field(d: FieldDiff) -> bool:
    """nodeSelector and affinity: they only choose the node."""
    path = plain_path(d.path)
    return path[:3] == TEMPLATE and len(path) > 3 and path[3] in PLACEMENT_FIELDS
