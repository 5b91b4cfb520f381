"""Apply: execute exactly the planned actions, in plan order, through a backend.

Apply never decides. `gate` (pure) says which changes the operator's flags and the VMs'
policies in git permit; `execute` runs the plan's actions and nothing else, writing a
journal entry before every side effect, reporting each object once with kubectl's
words, and carrying on with the independent actions when one fails.

Durable writes are batched (issue 13): the journal intents of up to BATCH_SIZE changes
go to disk with one fsync before the first of them runs, and a backend that can
(`BatchPreparer`) stores the identities of the batch's new VMs in one durable step
before defining any of them (rules 7 and 17).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from reconciler.backends.base import Backend
from reconciler.core.migration import cluster_policy, policy_for
from reconciler.core.model import Action, ApplyWord, Manifest, ObjectKey, VirtsyncError
from reconciler.core.vmspec import VmSpec
from reconciler.execute.journal import Journal
from reconciler.planning.classify import Disruption
from reconciler.planning.plan_model import ObjectChange, Plan

ALLOW_ANNOTATION = "virtsync.io/allow-disruption"  # "restart" or "data-loss"
BATCH_SIZE = 128  # changes whose intents share one fsync


@runtime_checkable
class BatchPreparer(Protocol):
    """A backend that can make ready, in one durable step, what a batch of creates will
    need before any of them runs (the libvirt backend: the new VMs' identities)."""

    def prepare_creates(self, creates: Sequence[tuple[Manifest, str | None]],
                        refs: Mapping[ObjectKey, Manifest]) -> None: ...


@dataclass(frozen=True)
class ApplyOptions:
    allow_restart: bool = False
    allow_data_loss: bool = False
    force_stop: bool = False
    prune: bool = False
    max_prune: int | None = None  # None: the default cap (cycle.prune_cap)
    grace_period: int | None = None


@dataclass(frozen=True)
class Refusal:
    key: ObjectKey
    needs: str  # the flag that would allow it
    cause: str


@dataclass(frozen=True)
class Outcome:
    key: ObjectKey
    word: ApplyWord
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.word is ApplyWord.FAILED


def allowed_by_policy(m: Manifest | None) -> Disruption:
    """The worst class the VM's own annotation in git allows without a flag."""
    if m is None:
        return Disruption.LIVE
    meta = m.body.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    value = annotations.get(ALLOW_ANNOTATION) if isinstance(annotations, dict) else None
    if value == "data-loss":
        return Disruption.DATA_LOSS
    if value in ("restart", "replace"):
        return Disruption.REPLACE
    return Disruption.LIVE


def gate(plan: Plan, desired: Mapping[ObjectKey, Manifest],
         options: ApplyOptions) -> list[Refusal]:
    """The changes the flags and policies do not permit. Pure; empty means go."""
    refusals: list[Refusal] = []
    for c in plan.changes:
        if c.is_delete and not options.prune:
            continue  # not executed without --prune; reported as skipped
        # --prune is the permission to undefine a removed VM; destroying its disks on top
        # still needs --allow-data-loss (or the VM's policy).
        policy = allowed_by_policy(desired.get(c.key))
        if c.disruption == Disruption.DATA_LOSS and not options.allow_data_loss \
                and policy < Disruption.DATA_LOSS:
            refusals.append(Refusal(c.key, "--allow-data-loss", c.cause))
        elif c.disruption in (Disruption.RESTART, Disruption.REPLACE) and not c.is_delete \
                and not (options.allow_restart or options.allow_data_loss) \
                and policy < Disruption.REPLACE:
            refusals.append(Refusal(c.key, "--allow-restart", c.cause))
    return refusals


def describe_refusals(refusals: list[Refusal]) -> str:
    lines = [f"apply refused: {len(refusals)} change(s) need explicit permission; "
             "nothing was changed:"]
    lines += [f"  {r.key}: needs {r.needs} ({r.cause})" for r in refusals]
    lines.append(f"(or allow it per VM in git with the annotation {ALLOW_ANNOTATION})")
    return "\n".join(lines)


def _grace(m: Manifest | None, options: ApplyOptions) -> int | None:
    if options.grace_period is not None:
        return options.grace_period
    return VmSpec.of(m).grace_period if m is not None else None


def _migration(backend: Backend, c: ObjectChange, vm: Manifest,
               desired: Mapping[ObjectKey, Manifest]) -> Callable[[], None]:
    """The backend call for a planned live migration, with the VM's policy (the Cluster's
    `spec.migration` under the VM's `migration.virtsync.io/` annotations)."""
    assert c.placement is not None
    source, target = c.placement.previous_node or "", c.placement.node or ""
    cluster = next((d for d in desired.values() if d.kind == "Cluster"), None)

    def call() -> None:  # a bad policy fails this step, journalled, like any other
        policy = policy_for(vm.body, cluster_policy(cluster.body if cluster else None))
        backend.migrate(c.key, source=source, target=target, policy=policy)
    return call


def execute(
    changes: Iterable[ObjectChange],
    backend: Backend,
    desired: Mapping[ObjectKey, Manifest],
    *,
    revision: str,
    journal: Journal,
    options: ApplyOptions,
    delete_disks: Callable[[ObjectKey], bool],
    report: Callable[[Outcome], None] = lambda o: None,
    stop: Callable[[], bool] = lambda: False,
) -> list[Outcome]:
    """Run a plan's actions in plan order; once `stop()` says so, the action in progress
    finishes and the rest are left. Refusals must have been checked by `gate`."""
    outcomes: list[Outcome] = []
    todo = list(changes)
    for start in range(0, len(todo), BATCH_SIZE):
        batch = [(c, _steps_of(c, backend, desired, revision, options, delete_disks))
                 for c in todo[start:start + BATCH_SIZE]]
        seqs = _announce(journal, batch)
        creates = [(desired[c.key], c.placement.node if c.placement else None)
                   for c, item in batch
                   if not isinstance(item, Outcome) and Action.CREATE in c.actions]
        if creates and isinstance(backend, BatchPreparer):
            backend.prepare_creates(creates, desired)
        for n, (change, item) in enumerate(batch):
            if stop():
                _withdraw(journal, batch[n:], seqs[n:])
                return outcomes
            outcome = item if isinstance(item, Outcome) else \
                _run_steps(change, item, seqs[n], journal)
            outcomes.append(outcome)
            report(outcome)
    return outcomes


Step = tuple[Action, Callable[[], None]]


@dataclass(frozen=True)
class _Call:
    """What one change's backend calls need besides the change itself."""

    backend: Backend
    desired: Mapping[ObjectKey, Manifest]
    revision: str
    options: ApplyOptions
    grace: int | None


Planned = tuple[list[Step], ApplyWord]


def _announce(journal: Journal, batch: Sequence[tuple[ObjectChange, Planned | Outcome]]
              ) -> list[list[int]]:
    """Every step of the batch on disk, one fsync (rule 7); per change, its steps' seqs."""
    steps = [(action, c.key, c.disruption.label) for c, item in batch
             if not isinstance(item, Outcome) for action, _run in item[0]]
    numbers = iter(journal.announce(steps))
    return [[] if isinstance(item, Outcome) else [next(numbers) for _ in item[0]]
            for _c, item in batch]


def _withdraw(journal: Journal, left: Sequence[tuple[ObjectChange, Planned | Outcome]],
              seqs: Sequence[Sequence[int]]) -> None:
    """Announced steps a stop leaves: closed, so no later run takes one as interrupted."""
    for (c, item), numbers in zip(left, seqs, strict=True):
        if not isinstance(item, Outcome):
            for (action, _run), seq in zip(item[0], numbers, strict=True):
                journal.withdraw(seq, action, c.key)


def _run_steps(c: ObjectChange, planned: Planned, seqs: Sequence[int],
               journal: Journal) -> Outcome:
    """The change's announced steps in order; a failed one withdraws the rest."""
    steps, word = planned
    for n, ((action, run), seq) in enumerate(zip(steps, seqs, strict=True)):
        journal.begin(seq)
        try:
            run()
        except VirtsyncError as exc:
            detail = str(exc)
            journal.failed(seq, action, c.key, detail)
            for (later, _run), dropped in zip(steps[n + 1:], seqs[n + 1:], strict=True):
                journal.withdraw(dropped, later, c.key)
            return Outcome(c.key, ApplyWord.FAILED, f"{action}: {detail}")
        journal.done(seq, action, c.key)
    return Outcome(c.key, word)


def _steps_of(c: ObjectChange, backend: Backend, desired: Mapping[ObjectKey, Manifest],
              revision: str, options: ApplyOptions,
              delete_disks: Callable[[ObjectKey], bool]) -> Planned | Outcome:
    """The change's backend steps and the word they earn, or its outcome when no backend
    action runs. Pure: nothing is called yet."""
    m = desired.get(c.key)
    if c.is_delete and not options.prune:
        return Outcome(c.key, ApplyWord.SKIPPED, "no longer in git; prune with --prune")
    if c.key.kind not in backend.profile.kinds:
        # Configuration objects live in git and the inventory; the backend never sees them.
        word = (ApplyWord.DELETED if c.is_delete else ApplyWord.CREATED
                if Action.CREATE in c.actions else ApplyWord.CONFIGURED)
        return Outcome(c.key, word)
    if m is None and not c.is_delete:
        return Outcome(c.key, ApplyWord.FAILED, "desired object missing from the tree")
    call = _Call(backend, desired, revision, options, _grace(m, options))
    if c.is_delete:
        wipe = delete_disks(c.key)
        # Exactly the files the plan lists (rule 13); none when the policy says keep.
        steps: list[Step] = [(Action.DELETE, lambda: backend.delete(
            c.key, delete_disks=wipe, grace_period=call.grace, force=options.force_stop,
            files=c.deleted_files))]
        word = ApplyWord.DELETED
    else:
        assert m is not None
        steps, word = _define_steps(c, m, call)
    word = _power_step(c, call, steps, word)
    return steps, word


def _define_steps(c: ObjectChange, m: Manifest, call: _Call) -> tuple[list[Step], ApplyWord]:
    """The steps that define the VM: replace, create, or update (and migrate)."""
    backend, refs, revision = call.backend, call.desired, call.revision
    grace, force = call.grace, call.options.force_stop
    node = c.placement.node if c.placement else None  # where the plan placed it
    if Action.REPLACE in c.actions:
        old = c.previous_key or c.key
        return [(Action.REPLACE, lambda: backend.replace(
            old, m, revision=revision, refs=refs, grace_period=grace, force=force,
            node=node))], ApplyWord.REPLACED
    if Action.CREATE in c.actions:
        return [(Action.CREATE, lambda: backend.create(m, revision=revision, refs=refs,
                                                      node=node))], ApplyWord.CREATED
    steps: list[Step] = []
    word = ApplyWord.CONFIGURED
    restart = Action.RESTART in c.actions
    migrating = Action.MIGRATE in c.actions and c.placement is not None
    # A live change lands where the guest runs now; then it migrates with it.
    here = c.placement.previous_node if migrating and c.placement else node
    if Action.UPDATE in c.actions or restart:  # a power-only change redefines nothing
        steps.append((Action.UPDATE, lambda: backend.update(
            m, revision=revision, refs=refs, restart=restart, grace_period=grace,
            force=force, node=here)))
    if restart:
        word = ApplyWord.RESTARTED
    if migrating:
        steps.append((Action.MIGRATE, _migration(backend, c, m, refs)))
        word = ApplyWord.MIGRATED
    return steps, word


def _power_step(c: ObjectChange, call: _Call, steps: list[Step], word: ApplyWord) -> ApplyWord:
    """Rule 16: stop or start only when the plan says the run strategy demands it."""
    backend, grace, force = call.backend, call.grace, call.options.force_stop
    if Action.STOP in c.actions:
        steps.append((Action.STOP, lambda: backend.stop(c.key, grace_period=grace, force=force)))
        return ApplyWord.STOPPED if word is ApplyWord.CONFIGURED else word
    if Action.START in c.actions and Action.CREATE not in c.actions:
        steps.append((Action.START, lambda: backend.start(c.key)))
        return ApplyWord.STARTED if word is ApplyWord.CONFIGURED else word
    return word
