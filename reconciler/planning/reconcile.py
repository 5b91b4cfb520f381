"""One reconcile cycle's planning half: desired from the tree, live from a backend.

`load_desired` refuses a tree with any validation error (safety rule 1); `observe_live`
turns a backend's observation plus the inventory's configuration objects into the live
side of the plan; `plan_live` pairs them so that prune is inventory − desired, never
live − desired (rule 4), and objects without virtsync's owner marker are not there at all
(rule 3). Side effects stay in the backend and in apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from reconciler.backends.base import LiveObject, Observation
from reconciler.core.model import (
    Manifest,
    ObjectKey,
    PrintableStatus,
    SourceRef,
    VirtsyncError,
)
from reconciler.core.sensitive import digest_sensitive
from reconciler.execute.inventory import Inventory
from reconciler.planning.classify import ClassificationProfile
from reconciler.planning.moves import move_context
from reconciler.planning.ownership import ClaimRefs, claim_users
from reconciler.planning.plan import make_plan
from reconciler.planning.plan_facts import PlanFacts
from reconciler.planning.plan_model import Fingerprints, Observed, Plan, content_hash
from reconciler.planning.plan_pairing import Pair
from reconciler.planning.planned import PlannedBodies
from reconciler.planning.schedule import Placement, RequestOf, request_of, schedule
from reconciler.planning.unchanged import UnchangedMemo

# The desired side is the tree library's; named here too, where planning always had it.
from reconciler.tree.desired import Desired as Desired
from reconciler.tree.desired import InvalidSource as InvalidSource
from reconciler.tree.source import read_desired

RUNNING_STATES = frozenset({PrintableStatus.RUNNING, PrintableStatus.STARTING, PrintableStatus.PAUSED,
                            PrintableStatus.MIGRATING, PrintableStatus.STOPPING})


def load_desired(paths: Sequence[str], *, digested: bool = False,
                 use_cache: bool = True) -> Desired:
    """Host mode's desired side: the tree at the one PATH, read by the desired-state
    library (`reconciler.tree.source`); an invalid tree raises InvalidSource (rule 1).
    `digested` only for a plan that is never applied (see `read_desired`)."""
    if len(paths) != 1:
        raise VirtsyncError(f"one PATH is read at a time, not {len(paths)}")
    return read_desired(paths[0], digested=digested, use_cache=use_cache)


def _observed_vm(o: LiveObject) -> Observed:
    m = Manifest(o.api_version, o.key.kind, o.key.namespace, o.key.name, o.body,
                 SourceRef(f"<live:{o.node or '?'}>", 0))
    return Observed(m, o.node or None, o.status.printable_status in RUNNING_STATES, o.disks,
                    operator_stop=o.status.stop_requested,
                    backoff=o.status.printable_status == PrintableStatus.CRASH_LOOP_BACK_OFF,
                    known_hash=o.body_hash)


def observe_live(observation: Observation, inventory: Inventory) -> list[Observed]:
    """Live VMs from the backend plus configuration objects recorded in the inventory."""
    out = [_observed_vm(o) for o in observation.objects]
    seen = {o.key for o in observation.objects}
    for key, entry in inventory.entries.items():
        if key in seen or entry.body is None:
            continue
        m = Manifest(entry.api_version, key.kind, key.namespace, key.name, entry.body,
                     SourceRef("<inventory>", 0))
        out.append(Observed(m))
    return out


def live_hash(observed: Sequence[Observed]) -> str:
    return content_hash((str(o.key), f"{o.body_hash}|{o.node}|{o.running}"
                                      f"|{o.operator_stop}|{o.backoff}")
                        for o in observed)


def plan_live(desired: Desired, observation: Observation, inventory: Inventory, *,
              prune: bool, profile: ClassificationProfile,
              claim_refs: ClaimRefs | None = None, memo: UnchangedMemo | None = None,
              bodies: PlannedBodies | None = None) -> Plan:
    """The plan that makes live match desired, classified by the backend's `profile`.
    Pure. `claim_refs` (default: from
    `desired` and everything observed) says who references each claim (rule 13).
    `memo` skips objects that planned as unchanged with the same inputs before;
    `bodies` keeps the desired side's digested bodies between a caller's plans.

    Live objects are considered only when desired names them or the inventory holds
    them (virtsync applied them from this source); with `prune` off, objects that left
    git are still listed as deletions so the operator sees them, and apply skips them.
    """
    wanted = {m.key for m in desired.manifests}
    everything = observe_live(observation, inventory)
    observed = [o for o in everything if o.key in wanted or o.key in inventory.entries]
    conflicts = set(observation.conflicts) & wanted
    if conflicts:
        names = ", ".join(str(k) for k in sorted(conflicts))
        raise VirtsyncError(f"refusing to plan: {names} exist(s) live without virtsync's owner "
                            "marker for that VM (an unmanaged domain, or one marked for another "
                            "VM, with the same name), or managed by another virtsync "
                            "installation (rule 18); rename the VM in git or remove the other "
                            "domain yourself")
    # Backends hold secrets only as digests: compare the desired side the same way.
    planned = bodies.of(desired) if bodies is not None else [
        m if m.key in desired.digested else replace(m, body=digest_sensitive(dict(m.body)))
        for m in desired.manifests]
    fingerprints = Fingerprints(
        desired_commit=desired.revision or None, desired_tree=None,
        desired_hash=desired.desired_hash,
        live_source=f"{profile.name}:{'prune' if prune else 'no-prune'}",
        live_hash=live_hash(observed),
    )
    # Every live VM counts as a user of the claims it mounts, whichever source applied it
    # and whichever node it is on (safety rule 13).
    facts = PlanFacts.of(planned, observed)  # each pair and claim read once per plan
    refs = claim_refs if claim_refs is not None else claim_users(
        facts.claims, (o.manifest for o in everything))
    moves = (move_context(desired.manifests, observation.nodes, live=profile.live_migration)
             if observation.nodes else None)
    return make_plan(planned, observed, fingerprints=fingerprints, profile=profile,
                     claim_refs=refs,
                     placement=place_vms(desired, facts.pairs, observation,
                                         bodies.request if bodies is not None else request_of),
                     moves=moves, memo=memo, facts=facts)


def place_vms(desired: Desired, pairs: Sequence[Pair], observation: Observation,
              request: RequestOf = request_of) -> dict[ObjectKey, Placement] | None:
    """The placement step, before the diff: None when the backend reports no nodes.
    `pairs`: desired paired with observed (`pair`); a renamed VM counts as being on its
    old domain's node."""
    if not observation.nodes:
        return None
    current = {p.key: p.live.node for p in pairs
               if p.desired is not None and p.live is not None and p.live.node}
    return schedule(desired.manifests, current, observation.nodes, desired.by_key, request)


