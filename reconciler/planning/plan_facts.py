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
    """`pair(desired, live)`, and `object_claims` of each desired object that names a
    claim, in order (one that names none changes no claim fact, and 10,000 kept empty
    ones cost the garbage collector more than reading them did)."""

    pairs: tuple[Pair, ...]
    claims: tuple[ObjectClaims, ...]

    @classmethod
    def of(cls, desired: Sequence[Manifest], live: Sequence[Observed]) -> PlanFacts:
        claims = (object_claims(m) for m in desired)
        return cls(tuple(pair(desired, live)), tuple(c for c in claims if c.referenced))
