"""What one plan reads of its objects once (issue 13): the desired/live pairs, which the
placement step and the diff both walk, and each desired object's claims, which the
ordering and the claim users both need. Pure; built per plan call and handed along,
never kept between plans (each plan's objects are its own)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.core.model import Manifest
from reconciler.planning.ownership import ObjectClaims, object_claims
from reconciler.planning.plan_model import Observed
from reconciler.planning.plan_pairing import Pair, pair


@dataclass(frozen=True)
class PlanFacts:
    """`pair(desired, live)` and `object_claims` of each desired object, in order."""

    pairs: tuple[Pair, ...]
    claims: tuple[ObjectClaims, ...]

    @classmethod
    def of(cls, desired: Sequence[Manifest], live: Sequence[Observed]) -> PlanFacts:
        return cls(tuple(pair(desired, live)), tuple(object_claims(m) for m in desired))
