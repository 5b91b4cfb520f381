"""Which of a watch cycle's planned changes may run now. Pure.

`apply` refuses a whole run when one change is not permitted; a watcher must not stall
every VM because one needs a restart, so it runs the others and reports the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.core.model import Manifest, ObjectKey
from reconciler.execute.apply import ApplyOptions, Refusal, gate
from reconciler.execute.cycle import prune_cap
from reconciler.execute.inventory import Inventory
from reconciler.planning.plan_model import ObjectChange, Plan


@dataclass(frozen=True)
class Permit:
    runnable: tuple[ObjectChange, ...]
    refusals: tuple[Refusal, ...]  # the flags and policies do not permit these
    deferred: tuple[ObjectKey, ...] = ()  # deletions waiting for a full read of the tree
    skipped: tuple[ObjectKey, ...] = ()  # deletions without --prune
    capped: tuple[ObjectKey, ...] = ()  # deletions held: more than the prune cap
    cap: int = 0


def permit(plan: Plan, desired: Mapping[ObjectKey, Manifest], options: ApplyOptions,
           inventory: Inventory, *, defer_deletions: bool) -> Permit:
    """The plan's changes that may run now, and why the others may not."""
    refusals = tuple(gate(plan, desired, options))
    refused = {r.key for r in refusals}
    changes = [c for c in plan.changes if c.key not in refused]
    deletions = tuple(c.key for c in changes if c.is_delete)
    kept = _without_deletions(changes)
    if deletions and defer_deletions:
        return Permit(kept, refusals, deferred=deletions)
    if deletions and not options.prune:
        return Permit(kept, refusals, skipped=deletions)
    cap = prune_cap(inventory, options.max_prune)
    if len(deletions) > cap:
        return Permit(kept, refusals, capped=deletions, cap=cap)
    return Permit(tuple(changes), refusals)


def _without_deletions(changes: Sequence[ObjectChange]) -> tuple[ObjectChange, ...]:
    return tuple(c for c in changes if not c.is_delete)
