"""Skipping objects a plan already found up to date, while nothing they depend on changed.

`plan_update` is a pure function of the desired body, the observed object (body, node,
power facts, disk files) and the node the placement step chose; whether it finds
*nothing to do* depends on nothing else (the profile only classifies changes). So a
digest of those inputs, remembered when a plan found the object unchanged, answers the
next plan without normalizing or diffing either side (issue 13: host-mode plans at
10,000 VMs). A domain edited behind virtsync's back (`virsh edit`) is observed with
another body, node or power state, so its digest misses and it is planned in full:
drift is never hidden. The digest also covers virtsync's version and the planner's own
code, so an upgrade re-plans everything once.

Pure: the remembered digests are read and written by the caller (reconciler.execute.planmemo).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler import __version__
from reconciler.core.digest import code_digest
from reconciler.core.model import Manifest, ObjectKey
from reconciler.planning.plan_model import Observed

# The code whose verdict a digest stands for: a change to any of it re-plans everything.
_PLANNER_CODE = ("planning.plan", "planning.normalize", "planning.diff", "planning.ownership",
                 "planning.moves", "planning.unchanged", "core.power", "core.quantity",
                 "core.sensitive")


def planner_digest() -> str:
    return code_digest(__version__, _PLANNER_CODE)


# What a plan lists for an unchanged object all the same: its unpinned identity fields
# (path, what), as plan_update found them.
Notes = tuple[tuple[str, str], ...]


@dataclass
class UnchangedMemo:
    """Digests of (desired, observed, placement) that planned as unchanged before
    (`known`, each with the unpinned-identity notes that plan listed), the desired
    side's body hash per key (of the raw body; a key without one is never skipped), and
    what this plan found unchanged (`kept`: what the caller stores for the next one)."""

    known: Mapping[str, Notes]
    desired_hashes: Mapping[ObjectKey, str]
    kept: dict[str, Notes] = field(default_factory=dict)

    def digest(self, desired: Manifest, obs: Observed, node: str | None) -> str | None:
        wanted = self.desired_hashes.get(desired.key)
        if wanted is None:
            return None
        disks = [(d.volume, d.source, d.path, d.exists, d.claim) for d in obs.disks]
        parts = (planner_digest(), str(desired.key), desired.api_version, wanted,
                 str(obs.key), obs.manifest.api_version, obs.body_hash,
                 repr((obs.node, obs.running, obs.operator_stop, obs.backoff, node, disks)))
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()

    def hit(self, digest: str | None) -> Notes | None:
        """The notes of a known digest (kept for the next plan); None: plan it."""
        notes = self.known.get(digest) if digest is not None else None
        if digest is not None and notes is not None:
            self.kept[digest] = notes
        return notes

    def keep(self, digest: str | None, notes: Notes) -> None:
        if digest is not None:
            self.kept[digest] = notes
