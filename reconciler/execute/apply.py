"""Apply: execute exactly the planned actions, in plan order, through a backend.

Apply never decides. `gate` (pure) says which changes the operator's flags and the VMs'
policies in git permit; `execute` runs the plan's actions and nothing else, writing a
journal entry before every side effect, reporting each object once with kubectl's
words, and carrying on with the independent actions when one fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from reconciler.backends.base import Backend
from reconciler.core.migration import cluster_policy, policy_for
from reconciler.core.model import Action, ApplyWord, Manifest, ObjectKey, VirtsyncError
from reconciler.core.vmspec import VmSpec
from reconciler.execute.journal import Journal
from reconciler.planning.classify import Disruption
from reconciler.planning.plan_model import ObjectChange, Plan

ALLOW_ANNOTATION = "virtsync.io/allow-disruption"  # "restart" or "data-loss"


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
    for change in changes:
        if stop():
            break
        outcome = _execute_one(change, backend, desired, revision, journal, options,
                               delete_disks)
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


def _execute_one(c: ObjectChange, backend: Backend, desired: Mapping[ObjectKey, Manifest],
                 revision: str, journal: Journal, options: ApplyOptions,
                 delete_disks: Callable[[ObjectKey], bool]) -> Outcome:
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
    for action, run in steps:
        seq = journal.intent(action, c.key, c.disruption.label)
        try:
            run()
        except VirtsyncError as exc:
            detail = str(exc)
            journal.failed(seq, action, c.key, detail)
            return Outcome(c.key, ApplyWord.FAILED, f"{action}: {detail}")
        journal.done(seq, action, c.key)
    return Outcome(c.key, word)


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
