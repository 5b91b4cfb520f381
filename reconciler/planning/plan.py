"""The plan: what merging (or applying) changes, per object, classified and ordered.

Pure: `make_plan(desired, live, ...)` pairs desired objects with observed ones by key,
normalizes, diffs and classifies each pair, and returns an immutable `Plan` whose field
values are already masked (safety rule 10), so no renderer can leak a secret.

The live side is a sequence of `Observed` objects: in pull-request mode the tree at the
base revision, later whatever a backend's observe() reports (with node and power state).
The values live in `plan_model`, pairing in `plan_pairing`, the JSON form in `plan_codec`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from reconciler.core.model import JSON, Action, Manifest, ObjectKey
from reconciler.core.power import (
    PowerAction,
    PowerFacts,
    RunStrategy,
    power_action,
    run_strategy,
    starts_on_create,
)
from reconciler.core.quantity import Quantity
from reconciler.core.sensitive import MASK, is_sensitive_path, redact
from reconciler.planning.classify import ClassificationProfile, Context, Disruption, classify
from reconciler.planning.diff import (
    MISSING,
    NODE,
    FieldDiff,
    count_leaves,
    diff,
    format_path,
    plain_path,
)
from reconciler.planning.moves import MoveContext, Scored, decide_move, hold_for_drain
from reconciler.planning.normalize import Keyed, align_defaults, get_path, normalize
from reconciler.planning.ownership import (
    ClaimKey,
    ClaimRefs,
    DiskFate,
    blank_claims,
    claim_depth,
    claim_users,
    delete_outcome,
    disk_fates,
    missing_files,
)
from reconciler.planning.plan_facts import PlanFacts
from reconciler.planning.plan_model import (
    FieldChange,
    Fingerprints,
    NodePlacement,
    ObjectChange,
    Observed,
    Plan,
    Summary,
    UnpinnedIdentity,
    ordered_actions,
)
from reconciler.planning.schedule import Placement
from reconciler.planning.unchanged import UnchangedMemo

WAVE_ANNOTATION = "virtsync.io/wave"
DISK_POLICY_ANNOTATION = "virtsync.io/disk-policy"  # Retain (default) | Delete
# Applied first: what VMs refer to must exist before them.
KIND_RANK: Mapping[str, int] = {
    "Cluster": 0,
    "VirtualMachineClusterInstancetype": 1, "VirtualMachineInstancetype": 1,
    "VirtualMachineClusterPreference": 1, "VirtualMachinePreference": 1,
    "DataVolume": 2, "VirtualMachine": 3,
}


# --- planning -------------------------------------------------------------------------


def make_plan(
    desired: Sequence[Manifest],
    live: Sequence[Observed],
    *,
    fingerprints: Fingerprints,
    profile: ClassificationProfile,
    placement: Mapping[ObjectKey, Placement] | None = None,
    unchanged: int = 0,
    claim_refs: ClaimRefs | None = None,
    moves: MoveContext | None = None,
    memo: UnchangedMemo | None = None,
    facts: PlanFacts | None = None,
) -> Plan:
    """The plan turning `live` into `desired`, classified by the backend's `profile`.

    `placement` is the node each desired VM should be on (reconciler.planning.schedule decided
    it; a VM whose node changes moves, a `(node)` field forcing a replace);
    `unchanged` counts objects the caller already knows to be identical (git mode skips
    files whose blob did not change) and adds them to the summary. `claim_refs` says which
    objects reference each claim (see `claim_users`); by default, `desired` and `live`.
    `moves` (the nodes and the migration policy) lets a running VM's node change be a
    live migration (`reconciler.planning.moves`); without it a move is a replace.
    `memo` skips a pair whose inputs planned as unchanged before (reconciler.planning.unchanged)
    and collects the pairs found unchanged now. `facts` are `PlanFacts.of(desired, live)`
    when the caller has them already (read once per plan).
    """
    facts = facts if facts is not None else PlanFacts.of(desired, live)
    refs = claim_refs if claim_refs is not None else claim_users(
        facts.claims, (o.manifest for o in live))
    blank = blank_claims(facts.claims)
    changes: list[ObjectChange] = []
    unpinned: list[UnpinnedIdentity] = []
    same = unchanged
    for p in facts.pairs:
        placed = placement.get(p.key) if placement else None
        if p.desired is not None and p.live is not None:
            placed = hold_for_drain(p.desired, p.live, placed, moves)
            node = placed.node if placed else None
            digest = memo.digest(p.desired, p.live, node) if memo is not None else None
            known = memo.hit(digest) if memo is not None else None
            if known is not None:
                unpinned.extend(UnpinnedIdentity(p.desired.key, *n) for n in known)
                same += 1
                continue
            change, notes = plan_update(p.desired, p.live, profile, node, blank, moves)
            unpinned.extend(notes)
            if change is None:
                same += 1
                if memo is not None:
                    memo.keep(digest, tuple((n.path, n.what) for n in notes))
            else:
                changes.append(_placed(change, placed, p.live.node))
        elif p.desired is not None:
            changes.append(_placed(plan_create(p.desired), placed, None))
        elif p.live is not None:
            changes.append(plan_delete(p.live, profile, refs))
    ordered = order(changes, claim_depth(facts.claims))
    return Plan(tuple(ordered), summarize(ordered, same), fingerprints, profile.name,
                tuple(sorted(unpinned, key=lambda u: (u.key, u.path))))


def _placed(change: ObjectChange, placed: Placement | None,
            previous: str | None) -> ObjectChange:
    if placed is None:
        return change
    return replace(change, placement=NodePlacement(placed.node, previous, placed.reason))


def _power_facts(body: Mapping[str, JSON], obs: Observed) -> PowerFacts:
    """The node's facts, or in git mode (power unknown) what the base run strategy
    implies: Manual and unknown strategies count as running (the safe side)."""
    if obs.running is not None:
        return PowerFacts(obs.running, obs.operator_stop, obs.backoff)
    return PowerFacts(run_strategy(body) is not RunStrategy.HALTED)


POWER_CAUSE = {
    PowerAction.START: "power: the run strategy wants the guest running and it is stopped",
    PowerAction.STOP: "power: runStrategy Halted, but the guest is running",
}


def _score(diffs: list[FieldDiff], ctx: Context, profile: ClassificationProfile,
           restarts: bool) -> list[Scored]:
    """Each field change with its class, its effective class (a restart of a guest that
    is off takes effect at its next start) and reason."""
    scored: list[Scored] = []
    for d in diffs:
        verdict = classify(d, ctx, profile)
        effective, reason = verdict.disruption, verdict.reason
        if effective == Disruption.RESTART and not restarts:
            # The guest is (or will be) off: the change takes effect at its next start.
            effective, reason = Disruption.NONE, reason + " (applies at the next start)"
        scored.append((d, verdict.disruption, effective, reason, verdict.identity))
    return scored


def _actions(scored: list[Scored], *, updates: bool, migrate: bool, power: PowerAction,
             renamed: bool, restarts: bool) -> list[Action]:
    """What apply must do to the domain. Losing data needs the guest off (a restart)
    unless the domain is replaced anyway."""
    mechanical = max(Disruption.RESTART if s[2] == Disruption.DATA_LOSS else s[2]
                     for s in scored)
    actions = [Action.UPDATE] if updates else []
    if migrate:
        actions.append(Action.MIGRATE)
    if power is not PowerAction.NONE:
        actions.append(Action(power.value))
    if mechanical >= Disruption.REPLACE or renamed:
        actions = [a for a in actions if a is not Action.UPDATE]
        actions.append(Action.REPLACE)
    elif mechanical == Disruption.RESTART and restarts:
        actions.append(Action.RESTART)
    return actions


def plan_update(desired: Manifest, obs: Observed, profile: ClassificationProfile,
                node: str | None,
                blank: frozenset[ClaimKey] = frozenset(),
                moves: MoveContext | None = None,
                ) -> tuple[ObjectChange | None, list[UnpinnedIdentity]]:
    after = normalize(desired.kind, desired.body, desired.namespace)
    before_raw = normalize(obs.manifest.kind, obs.manifest.body, obs.manifest.namespace)
    before, unpinned_paths = align_defaults(after, before_raw, desired.kind)
    notes = [UnpinnedIdentity(desired.key, format_path(u.path), u.what) for u in unpinned_paths]
    diffs = diff(before, after) if before != after else []
    if node is not None and obs.node is not None and node != obs.node:
        diffs.append(FieldDiff((NODE,), obs.node, node))
    diffs += missing_files(obs.manifest.namespace, obs.disks, blank)
    power = PowerAction.NONE
    run_before = run_after = False
    if desired.kind == "VirtualMachine":  # rule 16: power changes only as the strategy demands
        facts = _power_facts(before, obs)
        power = power_action(run_strategy(before), run_strategy(after), facts)
        run_before = facts.running
        run_after = power is PowerAction.START or (run_before and power is not PowerAction.STOP)
    if not diffs and power is PowerAction.NONE:
        return None, notes
    if not diffs:
        return _power_only(desired, power, count_leaves(after)), notes
    restarts = run_before and run_after
    scored = _score(diffs, Context(desired.kind, before, after), profile, restarts)
    migrate = False
    if moves is not None and restarts and node is not None and obs.node is not None:
        scored, migrate = decide_move(scored, desired, obs.node, node, moves)
    worst = max(s[2] for s in scored)
    forcing = next(s for s in scored if s[2] == worst)
    fields = tuple(_field(d, cls, reason, ident, forces=(d is forcing[0] and worst > 0))
                   for d, cls, _, reason, ident in scored)
    actions = _actions(scored, updates=len(diffs) > int(migrate), migrate=migrate, power=power,
                       renamed=obs.key != desired.key, restarts=restarts)
    changed_leaves = sum(count_leaves(d.after) for d in diffs if d.after is not MISSING)
    cause = f"{format_path(forcing[0].path)}: {forcing[3]}" if worst > 0 else forcing[3]
    return ObjectChange(
        key=desired.key, api_version=desired.api_version, actions=ordered_actions(actions),
        disruption=worst, cause=cause, fields=fields,
        unchanged=max(count_leaves(after) - changed_leaves, 0), source=desired.source.file,
        wave=wave_of(desired.body),
        previous_key=obs.key if obs.key != desired.key else None,
        identity_change=any(s[4] for s in scored),
    ), notes


def _power_only(desired: Manifest, power: PowerAction, leaves: int) -> ObjectChange:
    """Nothing in git changed, but the run strategy's demand is not met (rule 16)."""
    return ObjectChange(
        key=desired.key, api_version=desired.api_version, actions=(Action(power.value),),
        disruption=Disruption.LIVE, cause=POWER_CAUSE[power], fields=(), unchanged=leaves,
        source=desired.source.file, wave=wave_of(desired.body))


def plan_create(desired: Manifest) -> ObjectChange:
    after = normalize(desired.kind, desired.body, desired.namespace)
    fields = tuple(_field(d, Disruption.NONE, "new object", False, forces=False)
                   for d in diff({}, after))
    actions = [Action.CREATE]
    if desired.kind == "VirtualMachine" and starts_on_create(run_strategy(after)):
        actions.append(Action.START)
    return ObjectChange(desired.key, desired.api_version, tuple(actions), Disruption.NONE,
                        "new object", fields, 0, desired.source.file, wave_of(desired.body))


def plan_delete(obs: Observed, profile: ClassificationProfile,
                claim_refs: ClaimRefs | None = None) -> ObjectChange:
    m = obs.manifest
    before = normalize(m.kind, m.body, m.namespace)
    disruption, cause = delete_class(m.kind, before, profile)
    fates: tuple[DiskFate, ...] = ()
    if disruption == Disruption.DATA_LOSS and obs.disks and m.kind == "VirtualMachine":
        fates = disk_fates(m, obs.disks, claim_refs or {})
        disruption, cause = delete_outcome(fates, cause)
    fields = tuple(_field(d, disruption, cause, False, forces=False)
                   for d in diff(before, {}))
    return ObjectChange(m.key, m.api_version, (Action.DELETE,), disruption, cause, fields, 0,
                        m.source.file, wave_of(m.body), disks=fates)


def delete_class(kind: str, body: Mapping[str, JSON],
                 profile: ClassificationProfile) -> tuple[Disruption, str]:
    """What deleting an object destroys. A DataVolume takes its disk with it. Where the
    profile says so (KubeVirt) a VM takes the DataVolumes it owns (dataVolumeTemplates);
    otherwise a VM is undefined with its disks kept unless its disk policy (annotation
    virtsync.io/disk-policy: Delete, as applied) says they go too (safety rule 4).
    Configuration objects are metadata."""
    if kind == "DataVolume":
        return Disruption.DATA_LOSS, "the DataVolume and its disk are deleted"
    if kind == "VirtualMachine":
        policy = get_path(body, ("metadata", "annotations", DISK_POLICY_ANNOTATION))
        if policy == "Delete":
            return Disruption.DATA_LOSS, "its disks are deleted with it (disk policy Delete)"
        if profile.vm_delete_takes_owned_volumes and get_path(
                body, ("spec", "dataVolumeTemplates")):
            return Disruption.DATA_LOSS, "its owned DataVolumes are deleted with it"
        return Disruption.REPLACE, "the domain is undefined; its disks are kept"
    return Disruption.NONE, "configuration object removed"


def plain(value: JSON) -> JSON:
    """Plain JSON data: keyed lists back to lists, quantities as written."""
    if isinstance(value, Quantity):
        return value.raw
    if isinstance(value, Keyed):
        return [plain(v) for v in value.values()]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _field(d: FieldDiff, disruption: Disruption, reason: str, identity: bool,
           *, forces: bool) -> FieldChange:
    where = plain_path(d.path)
    sensitive = is_sensitive_path(where)

    def shown(value: JSON) -> JSON:
        if value is MISSING:
            return None
        return MASK if sensitive else redact(plain(value), where)

    return FieldChange(format_path(d.path), d.op, shown(d.before), shown(d.after), disruption,
                       reason, identity, sensitive, forces)


def wave_of(body: Mapping[str, JSON]) -> int:
    value = get_path(body, ("metadata", "annotations", WAVE_ANNOTATION))
    try:
        return int(value) if isinstance(value, str | int) and not isinstance(value, bool) else 0
    except ValueError:
        return 0


def sort_key(c: ObjectChange,
             depth: Mapping[ObjectKey, int] | None = None) -> tuple[int, int, int, str, str]:
    return (c.wave, KIND_RANK.get(c.key.kind, 9), (depth or {}).get(c.key, 0),
            c.key.namespace, c.key.name)


def order(changes: Iterable[ObjectChange],
          depth: Mapping[ObjectKey, int] | None = None) -> list[ObjectChange]:
    """One total order: wave, then kind (what VMs need first), then claim owners before
    the VMs that mount their claims (`claim_depth`), then name; deletions last, in
    exactly the reverse of that order."""
    items = list(changes)

    def key(c: ObjectChange) -> tuple[int, int, int, str, str]:
        return sort_key(c, depth)

    forward = sorted((c for c in items if not c.is_delete), key=key)
    deletions = sorted((c for c in items if c.is_delete), key=key, reverse=True)
    return forward + deletions


def summarize(changes: Sequence[ObjectChange], unchanged: int) -> Summary:
    counts = dict.fromkeys(map(str, (Action.CREATE, Action.UPDATE, Action.RESTART,
                                     Action.MIGRATE, Action.REPLACE, Action.DELETE)), 0)
    for c in changes:
        for bucket in (Action.REPLACE, Action.CREATE, Action.DELETE, Action.RESTART,
                       Action.MIGRATE):
            if bucket in c.actions:
                counts[bucket] += 1
                break
        else:
            counts[Action.UPDATE] += 1
    data_loss = sum(1 for c in changes if c.disruption == Disruption.DATA_LOSS)
    return Summary(**counts, data_loss=data_loss, unchanged=unchanged)


