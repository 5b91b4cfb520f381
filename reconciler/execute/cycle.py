"""One reconcile cycle's steps, shared by `virtsync apply` and `virtsync watch`.

observe (everything, or just some keys) → plan → [gate, prune cap: the caller decides
what a refusal means] → execute → record the inventory. `apply` runs them once over the
whole tree; `watch` runs them after every change over the keys that changed, and over
everything on its periodic resync.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from reconciler.backends.base import Backend, Observation
from reconciler.core.model import ApplyWord, Manifest, ObjectKey
from reconciler.execute.apply import ApplyOptions, Outcome, execute
from reconciler.execute.cordons import checked, observe
from reconciler.execute.inventory import Inventory
from reconciler.execute.inventory_store import save_inventory
from reconciler.execute.journal import Journal, JournalEntry, resolve
from reconciler.execute.planmemo import plan_whole
from reconciler.planning.ownership import claim_users
from reconciler.planning.plan_model import ObjectChange, Plan
from reconciler.planning.planned import PlannedBodies
from reconciler.planning.reconcile import Desired, observe_live, plan_live
from reconciler.planning.unchanged import UnchangedMemo

DEFAULT_PRUNE_FRACTION = 0.2  # of the inventory; at least one object
APPLIED_WORDS = frozenset({ApplyWord.CREATED, ApplyWord.CONFIGURED, ApplyWord.RESTARTED,
                           ApplyWord.REPLACED, ApplyWord.STARTED, ApplyWord.STOPPED,
                           ApplyWord.MIGRATED})


@runtime_checkable
class KeyedObserver(Protocol):
    """A backend that can observe a few objects without listing all of them."""

    def observe_keys(self, keys: Iterable[ObjectKey]) -> Observation: ...


def observe_some(backend: Backend, keys: Collection[ObjectKey]) -> Observation:
    """What `observe` would report for `keys` only (never 'nothing exists' on failure)."""
    if isinstance(backend, KeyedObserver):
        return checked(backend.observe_keys(keys))
    full = observe(backend)
    wanted = set(keys)
    return Observation(tuple(o for o in full.objects if o.key in wanted),
                       tuple(k for k in full.conflicts if k in wanted), full.nodes)


def plan_cycle(desired: Desired, backend: Backend, inventory: Inventory, *, prune: bool,
               keys: Collection[ObjectKey] | None = None,
               memo: UnchangedMemo | None = None,
               bodies: PlannedBodies | None = None) -> tuple[Plan, Observation]:
    """Observe and plan. With `keys`, only those objects: desired, live and inventory are
    all narrowed to them, so objects outside the set are neither touched nor pruned.
    A whole plan skips what planned as unchanged before: with `memo` as the caller keeps
    it, else as the state's cache remembers it (reconciler.execute.planmemo); with
    `bodies` (a long-lived caller's), unchanged desired bodies are not digested again."""
    if keys is None:
        observation = observe(backend)
        profile = backend.profile.classification
        if memo is None:
            return plan_whole(desired, observation, inventory, prune=prune,
                              profile=profile), observation
        return plan_live(desired, observation, inventory, prune=prune, profile=profile,
                         memo=memo, bodies=bodies), observation
    wanted = set(keys)
    narrowed = Desired(tuple(m for m in desired.manifests if m.key in wanted),
                       desired.revision, desired.desired_hash, desired.root)
    entries = {k: inventory.entries[k] for k in wanted if k in inventory.entries}
    observation = observe_some(backend, wanted)
    narrow_inventory = Inventory(inventory.source, entries)
    plan = plan_live(narrowed, observation, narrow_inventory, prune=prune,
                     profile=backend.profile.classification)
    if any(c.deleted_files for c in plan.changes):
        # Deleting a file: every VM (whole tree, every node) must be asked whether it
        # still uses the claim, not just the changed keys (safety rule 13). Rare.
        everyone = observe_live(observe(backend), inventory)
        refs = claim_users(desired.manifests, (o.manifest for o in everyone))
        plan = plan_live(narrowed, observation, narrow_inventory, prune=prune,
                         profile=backend.profile.classification, claim_refs=refs)
    return plan, observation


def prune_cap(inventory: Inventory, max_prune: int | None) -> int:
    """The most objects one run may prune. An explicit `--max-prune 0` means none, not
    the default (`is not None`, never truthiness)."""
    if max_prune is not None:
        return max_prune
    return max(1, int(len(inventory.entries) * DEFAULT_PRUNE_FRACTION))


def prune_refusal(plan: Plan, inventory: Inventory, max_prune: int | None) -> str | None:
    """Why the plan's prune is refused (over the cap), or None. A refusal, not an error:
    the caller exits 1 like any other refused apply."""
    deletions = [c for c in plan.changes if c.is_delete]
    cap = prune_cap(inventory, max_prune)
    if len(deletions) > cap:
        return (f"apply refused: pruning {len(deletions)} objects is over the cap ({cap}); "
                f"nothing was changed. If this is intended, pass --max-prune {len(deletions)}")
    return None


@runtime_checkable
class TempSweeper(Protocol):
    """A backend that can remove temp files interrupted disk creations left behind."""

    def sweep_temp_files(self) -> tuple[str, ...]: ...


def settle(state: Path, backend: Backend, earlier: Sequence[JournalEntry],
           outcomes: Sequence[Outcome]) -> tuple[int, tuple[str, ...]]:
    """After a run, clean what an earlier `kill -9` left once this run converged past it:
    earlier unfinished intents whose object has no failed or skipped outcome now are
    marked resolved (noted once, not forever); when nothing failed, temp disk files are
    swept. Returns (intents resolved, files removed)."""
    unsettled = {o.key for o in outcomes if o.failed or o.word is ApplyWord.SKIPPED}
    done = [e for e in earlier if e.key not in unsettled]
    resolve(state, done)
    swept: tuple[str, ...] = ()
    if not any(o.failed for o in outcomes) and isinstance(backend, TempSweeper):
        swept = backend.sweep_temp_files()
    return len(done), swept


@dataclass(frozen=True)
class Run:
    """What executing changes needs besides the changes: one per `apply`, one per
    `watch` process (its journal spans every cycle)."""

    state: Path
    backend: Backend
    journal: Journal
    options: ApplyOptions
    report: Callable[[Outcome], None] = lambda o: None
    stop: Callable[[], bool] = lambda: False  # leave the rest after the action in progress


def apply_changes(run: Run, changes: Sequence[ObjectChange], desired: Desired,
                  refs: Mapping[ObjectKey, Manifest], inventory: Inventory, *,
                  planned: Sequence[ObjectChange] = ()) -> tuple[list[Outcome], Inventory]:
    """Execute `changes` in order, then record the inventory (no write when unchanged,
    rule 12). `refs`: the whole tree, where instancetypes and preferences are looked up.
    A change of `planned` that did not run (refused, or left by a stop) is not adopted
    as applied."""
    entries = inventory.entries
    outcomes = execute(changes, run.backend, refs, revision=desired.revision,
                       journal=run.journal, options=run.options,
                       delete_disks=lambda k: entries[k].delete_disks if k in entries else False,
                       report=run.report, stop=run.stop)
    ran = {o.key for o in outcomes}
    held = [Outcome(c.key, ApplyWord.NOT_RUN) for c in [*changes, *planned] if c.key not in ran]
    return outcomes, record(run.state, inventory, desired, [*outcomes, *held],
                            backend=run.backend)


def new_journal(state: Path) -> Journal:
    import uuid  # only when a run journals: uuid imports platform (start-up, issue 13)

    return Journal(state, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" +
                   uuid.uuid4().hex[:8])


def updated_inventory(inventory: Inventory, desired: Desired,
                      outcomes: Sequence[Outcome]) -> Inventory:
    """What this source applied after a run over `desired`. Unchanged desired objects are
    recorded too (adoption after a crash, or a lost state directory). Pure."""
    done = {o.key for o in outcomes}
    by_key = desired.by_key
    applied = [by_key[o.key] for o in outcomes if o.word in APPLIED_WORDS and o.key in by_key]
    adopted = [m for m in desired.manifests
               if m.key not in done and m.key not in inventory.entries]
    deleted = [o.key for o in outcomes if o.word is ApplyWord.DELETED and o.key in inventory.entries]
    touched = [*applied, *adopted]
    if not touched and not deleted:
        return inventory
    new = inventory.with_applied(touched, desired.revision)
    if not deleted and all(_same_entry(inventory, new, m.key) for m in touched):
        return inventory  # only the touched entries can differ: compare just those
    return new.without(deleted) if deleted else new


def _same_entry(a: Inventory, b: Inventory, key: ObjectKey) -> bool:
    old = a.entries.get(key)
    return old is not None and old == b.entries[key] and old.body == b.entries[key].body


def record(state: Path, inventory: Inventory, desired: Desired,
           outcomes: Sequence[Outcome], *, backend: Backend | None = None) -> Inventory:
    """Update and save the inventory (where `backend` keeps it, see inventory_store); an
    unchanged one makes no write (rule 12)."""
    new = updated_inventory(inventory, desired, outcomes)
    if new is not inventory:  # updated_inventory returns it as is when unchanged
        save_inventory(state, new, backend)  # itself skips a byte-identical document
    return new
