"""What `virtsync drain NODE` does to each VM on the node, from the plan made with the
node cordoned. Pure. The plan's change off the node is what runs (a `migrate`, or a
shut-down-and-move replace); a VM without one stays, and the eviction strategy
(`reconciler.planning.eviction`) says why: blocked (LiveMigrate and not migratable, or no
node can take it) or left for an external controller (External)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from reconciler.backends.base import LiveObject
from reconciler.core.model import Action, Manifest, ObjectKey
from reconciler.planning.eviction import DrainAction
from reconciler.planning.moves import MoveContext, drain_decision, migration_targets
from reconciler.planning.plan_model import ObjectChange, Plan
from reconciler.planning.reconcile import RUNNING_STATES


class Eviction(StrEnum):
    """One VM's fate in a drain, in kubectl drain's words."""

    MIGRATE = "evicting"  # live migration to another node
    SHUTDOWN = "evicting (shut down and moved)"
    MOVE = "evicting (stopped: its definition moves)"
    BLOCKED = "blocked"
    LEFT = "left"  # External: an external controller moves it


@dataclass(frozen=True)
class DrainItem:
    key: ObjectKey
    eviction: Eviction
    detail: str
    change: ObjectChange | None = None  # the plan's change that evicts it

    @property
    def blocks(self) -> bool:
        return self.eviction is Eviction.BLOCKED


def _off(change: ObjectChange, node: str) -> bool:
    p = change.placement
    return p is not None and p.moves and p.previous_node == node


def drain_items(plan: Plan, objects: Sequence[LiveObject], desired: Mapping[ObjectKey, Manifest],
                node: str, ctx: MoveContext) -> list[DrainItem]:
    """Every VM this tree manages on `node`, sorted by name, with what the drain does."""
    changes = {c.key: c for c in plan.changes if _off(c, node)}
    out: list[DrainItem] = []
    for o in sorted(objects, key=lambda o: o.key):
        vm = desired.get(o.key)
        if o.node != node or vm is None:
            continue  # another node's, or not this tree's: a drain touches neither (rule 18)
        running = o.status.printable_status in RUNNING_STATES
        change = changes.get(o.key)
        if change is not None:
            kind = (Eviction.MIGRATE if Action.MIGRATE in change.actions
                    else Eviction.SHUTDOWN if running else Eviction.MOVE)
            out.append(DrainItem(o.key, kind, change.cause, change))
            continue
        targets, verdict = migration_targets(vm, node, ctx)
        step = drain_decision(vm, running, verdict)
        if step.action is DrainAction.EXTERNAL:
            out.append(DrainItem(o.key, Eviction.LEFT, step.reason))
        elif step.action is DrainAction.BLOCK:
            out.append(DrainItem(o.key, Eviction.BLOCKED, step.reason))
        else:
            out.append(DrainItem(o.key, Eviction.BLOCKED, "no other node can take it"
                                 + ("" if targets else f" ({verdict.describe()})")))
    return out
