"""The plan: what merging (or applying) changes, per object, classified and ordered.

Pure: `make_plan(desired, live, ...)` pairs desired objects with observed ones by key,
normalizes, diffs and classifies each pair, and returns an immutable `Plan` whose field
values are already masked (safety rule 10), so no renderer can leak a secret.

The live side is a sequence of `Observed` objects: in pull-request mode the tree at the
base revision, later whatever a backend's observe() reports (with node and power state).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reconciler.classify import ClassificationProfile, Context, Disruption, classify
from reconciler.diff import MISSING, NODE, FieldDiff, count_leaves, diff, format_path, plain_path
from reconciler.model import (
    JSON,
    Action,
    DiffOp,
    DiskFile,
    Manifest,
    ObjectKey,
    VirtsyncError,
)
from reconciler.normalize import Keyed, align_defaults, canonical_mac, get_path, normalize
from reconciler.ownership import (
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
from reconciler.power import (
    PowerAction,
    PowerFacts,
    RunStrategy,
    power_action,
    run_strategy,
    starts_on_create,
)
from reconciler.quantity import Quantity
from reconciler.schedule import Placement
from reconciler.sensitive import MASK, is_sensitive_path, redact

FORMAT_VERSION = "2"  # 2: a replace is written ["delete", "create"], as Terraform does
WAVE_ANNOTATION = "virtsync.io/wave"
DISK_POLICY_ANNOTATION = "virtsync.io/disk-policy"  # Retain (default) | Delete
ACTIONS = tuple(Action)
# Applied first: what VMs refer to must exist before them.
KIND_RANK: Mapping[str, int] = {
    "Cluster": 0,
    "VirtualMachineClusterInstancetype": 1, "VirtualMachineInstancetype": 1,
    "VirtualMachineClusterPreference": 1, "VirtualMachinePreference": 1,
    "DataVolume": 2, "VirtualMachine": 3,
}


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

    @property
    def key(self) -> ObjectKey:
        return self.manifest.key


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

    @property
    def changes(self) -> int:
        return self.create + self.update + self.restart + self.replace + self.delete


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


# --- planning -------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    key: ObjectKey
    desired: Manifest | None
    live: Observed | None


def pair(desired: Sequence[Manifest], live: Sequence[Observed]) -> list[Pair]:
    """Desired and live objects matched by key; a desired object whose pinned identity
    (firmware UUID or a MAC) matches an unmatched live one of the same kind is that
    object renamed."""
    live_by_key = {o.key: o for o in live}
    desired_keys = {m.key for m in desired}
    pairs: list[Pair] = []
    unmatched: list[Manifest] = []
    for m in desired:
        obs = live_by_key.get(m.key)
        if obs is None:
            unmatched.append(m)
        pairs.append(Pair(m.key, m, obs))
    orphans = {o.key: o for o in live if o.key not in desired_keys}
    by_identity: dict[tuple[str, str], ObjectKey] = {}
    for o in orphans.values():
        for ident in identity_values(o.manifest.body):
            by_identity.setdefault((o.key.kind, ident), o.key)
    renamed: dict[ObjectKey, Observed] = {}
    for m in unmatched:
        for ident in identity_values(m.body):
            old = by_identity.get((m.kind, ident))
            if old is not None and old in orphans:
                renamed[m.key] = orphans.pop(old)
                break
    if renamed:
        pairs = [Pair(p.key, p.desired, renamed.get(p.key, p.live)) for p in pairs]
    pairs.extend(Pair(k, None, o) for k, o in orphans.items())
    return pairs


def identity_values(body: Mapping[str, JSON]) -> list[str]:
    """Pinned identity of a VM body: firmware UUID and interface MACs, lower-cased."""
    out: list[str] = []
    domain = get_path(body, ("spec", "template", "spec", "domain"))
    uuid = get_path(domain, ("firmware", "uuid"))
    if isinstance(uuid, str):
        out.append("uuid:" + uuid.lower())
    interfaces = get_path(domain, ("devices", "interfaces"))
    if isinstance(interfaces, list):
        for iface in interfaces:
            mac = iface.get("macAddress") if isinstance(iface, Mapping) else None
            if isinstance(mac, str):
                out.append("mac:" + canonical_mac(mac))
    return out


def make_plan(
    desired: Sequence[Manifest],
    live: Sequence[Observed],
    *,
    fingerprints: Fingerprints,
    profile: ClassificationProfile,
    placement: Mapping[ObjectKey, Placement] | None = None,
    unchanged: int = 0,
    claim_refs: ClaimRefs | None = None,
) -> Plan:
    """The plan turning `live` into `desired`, classified by the backend's `profile`.

    `placement` is the node each desired VM should be on (reconciler.schedule decided
    it; a VM whose node changes moves, a `(node)` field forcing a replace);
    `unchanged` counts objects the caller already knows to be identical (git mode skips
    files whose blob did not change) and adds them to the summary. `claim_refs` says which
    objects reference each claim (see `claim_users`); by default, `desired` and `live`.
    """
    refs = claim_refs if claim_refs is not None else claim_users(
        desired, (o.manifest for o in live))
    blank = blank_claims(desired)
    changes: list[ObjectChange] = []
    unpinned: list[UnpinnedIdentity] = []
    same = unchanged
    for p in pair(desired, live):
        placed = placement.get(p.key) if placement else None
        if p.desired is not None and p.live is not None:
            node = placed.node if placed else None
            change, notes = plan_update(p.desired, p.live, profile, node, blank)
            unpinned.extend(notes)
            if change is None:
                same += 1
            else:
                changes.append(_placed(change, placed, p.live.node))
        elif p.desired is not None:
            changes.append(_placed(plan_create(p.desired), placed, None))
        elif p.live is not None:
            changes.append(plan_delete(p.live, profile, refs))
    ordered = order(changes, claim_depth(desired))
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


def plan_update(desired: Manifest, obs: Observed, profile: ClassificationProfile,
                node: str | None,
                blank: frozenset[ClaimKey] = frozenset(),
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
    ctx = Context(desired.kind, before, after)
    restarts = run_before and run_after
    scored: list[tuple[FieldDiff, Disruption, Disruption, str, bool]] = []
    for d in diffs:
        verdict = classify(d, ctx, profile)
        effective, reason = verdict.disruption, verdict.reason
        if effective == Disruption.RESTART and not restarts:
            # The guest is (or will be) off: the change takes effect at its next start.
            effective, reason = Disruption.NONE, reason + " (applies at the next start)"
        scored.append((d, verdict.disruption, effective, reason, verdict.identity))
    worst = max(s[2] for s in scored)
    forcing = next(s for s in scored if s[2] == worst)
    # What apply must do to the domain: losing data needs the guest off (a restart)
    # unless the domain is replaced anyway.
    mechanical = max(Disruption.RESTART if s[2] == Disruption.DATA_LOSS else s[2]
                     for s in scored)
    fields = tuple(_field(d, cls, reason, ident, forces=(d is forcing[0] and worst > 0))
                   for d, cls, _, reason, ident in scored)
    actions = [Action.UPDATE]
    if power is not PowerAction.NONE:
        actions.append(Action(power.value))
    if mechanical >= Disruption.REPLACE or obs.key != desired.key:
        actions = [a for a in actions if a is not Action.UPDATE]
        actions.append(Action.REPLACE)
    elif mechanical == Disruption.RESTART and restarts:
        actions.append(Action.RESTART)
    changed_leaves = sum(count_leaves(d.after) for d in diffs if d.after is not MISSING)
    cause = f"{format_path(forcing[0].path)}: {forcing[3]}" if worst > 0 else forcing[3]
    return ObjectChange(
        key=desired.key, api_version=desired.api_version, actions=_ordered_actions(actions),
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


def _ordered_actions(actions: Iterable[Action]) -> tuple[Action, ...]:
    present = set(actions)
    return tuple(a for a in ACTIONS if a in present)


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
                                     Action.REPLACE, Action.DELETE)), 0)
    for c in changes:
        for bucket in (Action.REPLACE, Action.CREATE, Action.DELETE, Action.RESTART):
            if bucket in c.actions:
                counts[bucket] += 1
                break
        else:
            counts[Action.UPDATE] += 1
    data_loss = sum(1 for c in changes if c.disruption == Disruption.DATA_LOSS)
    return Summary(**counts, data_loss=data_loss, unchanged=unchanged)


# --- fingerprints and plan files ------------------------------------------------------


def content_hash(items: Iterable[tuple[str, str]]) -> str:
    """sha256 over sorted (path, content digest) pairs: the identity of a set of files."""
    h = hashlib.sha256()
    for path, digest in sorted(items):
        h.update(f"{path}\0{digest}\n".encode())
    return "sha256:" + h.hexdigest()


def to_document(plan: Plan) -> dict[str, Any]:
    """The versioned JSON form (schemas/plan.schema.json): output and saved plan file."""
    s = plan.summary
    fp = plan.fingerprints
    return {
        "format_version": FORMAT_VERSION,
        "backend": plan.backend,
        "summary": {"create": s.create, "update": s.update, "restart": s.restart,
                    "replace": s.replace, "delete": s.delete, "data_loss": s.data_loss,
                    "unchanged": s.unchanged, "changes": s.changes},
        "changes": [_change_doc(c) for c in plan.changes],
        "unpinned_identity": [{"key": str(u.key), "path": u.path, "what": u.what}
                              for u in plan.unpinned],
        "fingerprints": {
            "desired": {"commit": fp.desired_commit, "tree": fp.desired_tree,
                        "hash": fp.desired_hash},
            "live": {"source": fp.live_source, "hash": fp.live_hash},
        },
    }


def _change_doc(c: ObjectChange) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "key": str(c.key), "kind": c.key.kind, "namespace": c.key.namespace,
        "name": c.key.name, "api_version": c.api_version, "actions": json_actions(c.actions),
        "disruption": c.disruption.label, "cause": c.cause, "source": c.source,
        "wave": c.wave, "identity_change": c.identity_change,
        "previous_key": str(c.previous_key) if c.previous_key else None,
        "unchanged_fields": c.unchanged,
        "fields": [{"path": f.path, "op": f.op, "before": f.before, "after": f.after,
                    "disruption": f.disruption.label, "reason": f.reason,
                    "identity": f.identity, "sensitive": f.sensitive, "forces": f.forces}
                   for f in c.fields],
        "disks": [{"path": d.path, "volume": d.volume,
                   "action": "delete" if d.delete else "keep", "reason": d.reason}
                  for d in c.disks],
    }
    if c.placement is not None:  # only where the backend places VMs (not in git mode)
        doc["placement"] = {"node": c.placement.node,
                            "previous_node": c.placement.previous_node,
                            "reason": c.placement.reason}
    return doc


def json_actions(actions: Iterable[Action]) -> list[Action]:
    """A change's actions as the JSON plan writes them: a replace is a delete and then a
    create (Terraform's words, in the order apply undefines and defines the domain), before
    any power action; the text and markdown renders keep the one word "replace"."""
    present = tuple(actions)
    if Action.REPLACE not in present:
        return list(present)
    return [Action.DELETE, Action.CREATE, *(a for a in present if a is not Action.REPLACE)]


def model_actions(words: Iterable[str]) -> tuple[Action, ...]:
    """The inverse of `json_actions`; raises ValueError for a word the JSON plan never
    writes (`replace` included)."""
    actions = [Action(w) for w in words]
    if Action.REPLACE in actions:
        raise ValueError("'replace' is written as 'delete', 'create' in this format")
    if Action.DELETE in actions and Action.CREATE in actions:
        actions = [a for a in actions if a not in (Action.DELETE, Action.CREATE)]
        actions.append(Action.REPLACE)
    return _ordered_actions(actions)


def _placement(doc: Any) -> NodePlacement | None:
    """Plan files written before placement was planned have none."""
    if doc is None:
        return None
    return NodePlacement(doc["node"], doc["previous_node"], doc["reason"])


def _key(text: str) -> ObjectKey:
    parts = text.split("/")
    if len(parts) == 3:
        return ObjectKey(*parts)
    if len(parts) == 2:
        return ObjectKey(parts[0], "", parts[1])
    raise ValueError(f"bad object key {text!r}")


def from_document(doc: Mapping[str, Any]) -> Plan:
    """A Plan from its JSON form. Raises VirtsyncError for another format version or
    a malformed document."""
    version = doc.get("format_version") if isinstance(doc, Mapping) else None
    if version != FORMAT_VERSION:
        found = f"it is of format version {version}" if isinstance(version, str) else \
            "it has no format_version"
        raise VirtsyncError(f"not a virtsync plan file of format version {FORMAT_VERSION} "
                            f"({found}): plan again (`virtsync plan --out-file`)")
    try:
        changes = tuple(
            ObjectChange(
                key=ObjectKey(c["kind"], c["namespace"], c["name"]),
                api_version=c["api_version"], actions=model_actions(c["actions"]),
                disruption=Disruption.from_label(c["disruption"]), cause=c["cause"],
                fields=tuple(FieldChange(f["path"], DiffOp(f["op"]), f["before"], f["after"],
                                         Disruption.from_label(f["disruption"]), f["reason"],
                                         f["identity"], f["sensitive"], f["forces"])
                             for f in c["fields"]),
                unchanged=c["unchanged_fields"], source=c["source"], wave=c["wave"],
                previous_key=_key(c["previous_key"]) if c["previous_key"] else None,
                identity_change=c["identity_change"],
                disks=tuple(DiskFate(d["path"], d["volume"], d["action"] == "delete",
                                     d["reason"]) for d in c["disks"]),
                placement=_placement(c.get("placement")))
            for c in doc["changes"])
        s = doc["summary"]
        summary = Summary(s["create"], s["update"], s["restart"], s["replace"], s["delete"],
                          s["data_loss"], s["unchanged"])
        fp = doc["fingerprints"]
        fingerprints = Fingerprints(fp["desired"]["commit"], fp["desired"]["tree"],
                                    fp["desired"]["hash"], fp["live"]["source"],
                                    fp["live"]["hash"])
        unpinned = tuple(UnpinnedIdentity(_key(u["key"]), u["path"], u["what"])
                         for u in doc["unpinned_identity"])
        return Plan(changes, summary, fingerprints, doc["backend"], unpinned)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise VirtsyncError(f"malformed plan file: {type(exc).__name__} {exc}") from None


def save_plan(plan: Plan, path: Path) -> None:
    from reconciler.fsutil import write_atomic

    write_atomic(path, (json.dumps(to_document(plan), indent=2) + "\n").encode())


def read_plan_document(path: Path) -> Any:
    """A plan file's JSON, unchecked (see reconciler.savedplan for the checks)."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise VirtsyncError(f"{path}: cannot read plan file: {exc}") from None


def load_plan(path: Path) -> Plan:
    return from_document(read_plan_document(path))


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
