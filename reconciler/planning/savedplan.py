"""Saved plan files are checked, never trusted (safety rule 15).

A plan file (`virtsync plan --out-file`) records what the operator reviewed. `apply
--plan` re-derives the plan from the same inputs the file names (the tree at PATH, live
state, this source's inventory) and runs it only when the file equals the re-derived
plan in every field — every key and leaf, types included. The re-derived plan is what
executes and what the permission gates judge, so nothing read from the file (a
disruption class, an action, a key, a fingerprint) can widen what apply does. A digest
in the file would add nothing: whoever can edit the file can recompute it. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.core.model import ObjectKey, VirtsyncError
from reconciler.planning.plan_codec import from_document, to_document
from reconciler.planning.plan_model import Plan, check_fresh

SHOWN = 5  # mismatches named in the refusal
# Why a fingerprint differs when the tree and live state did not (check_fresh covers those).
HINTS: Mapping[str, str] = {
    "fingerprints.live.source": "plan and apply must both use --prune, or both not",
    "fingerprints.desired.commit": "the source revision moved since the plan was made",
}


@dataclass(frozen=True)
class Mismatch:
    path: str  # e.g. changes[0].disruption
    saved: Any
    derived: Any

    def describe(self) -> str:
        hint = HINTS.get(self.path)
        text = f"{self.path}: the file says {_short(self.saved)}, re-derived {_short(self.derived)}"
        return f"{text} ({hint})" if hint else text


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def mismatches(saved: Any, derived: Any, path: str = "") -> list[Mismatch]:
    """Every leaf where two JSON documents differ. Strict: 1, 1.0 and true differ."""
    if isinstance(saved, dict) and isinstance(derived, dict):
        out: list[Mismatch] = []
        for k in [*derived, *(k for k in saved if k not in derived)]:
            where = f"{path}.{k}" if path else str(k)
            out += mismatches(saved.get(k, ABSENT), derived.get(k, ABSENT), where)
        return out
    if isinstance(saved, list) and isinstance(derived, list):
        out = []
        for i in range(max(len(saved), len(derived))):
            out += mismatches(saved[i] if i < len(saved) else ABSENT,
                              derived[i] if i < len(derived) else ABSENT, f"{path}[{i}]")
        return out
    if type(saved) is not type(derived) or saved != derived:
        return [Mismatch(path, saved, derived)]
    return []


def _deleted_keys(doc: Mapping[str, Any]) -> list[str]:
    """Object keys the file's deletions name, both as `key` and as kind/namespace/name,
    and the old keys its renames undefine."""
    out: list[str] = []
    changes = doc.get("changes")
    for c in changes if isinstance(changes, list) else []:
        actions = c.get("actions") if isinstance(c, dict) else None
        if not isinstance(actions, list) or "delete" not in actions:
            continue
        if "create" in actions:  # a replace: it undefines only the name a rename leaves
            if c.get("previous_key"):
                out.append(str(c.get("previous_key")))
            continue
        out.append(str(c.get("key")))
        out.append(str(ObjectKey(str(c.get("kind")), str(c.get("namespace") or ""),
                                 str(c.get("name")))))
    return out


def check_prune_scope(doc: Mapping[str, Any], inventory: Collection[ObjectKey],
                      where: str) -> None:
    """Refuse a file that deletes anything this source never applied (rule 15)."""
    known = {str(k) for k in inventory}
    foreign = sorted({k for k in _deleted_keys(doc) if k not in known})
    if foreign:
        raise VirtsyncError(
            f"saved plan {where} refused: it deletes {', '.join(foreign)}, not in this "
            "source's inventory (virtsync never applied it from this folder); nothing "
            "was changed (safety rule 15)")


def check_saved_plan(doc: Any, derived: Plan, inventory: Collection[ObjectKey],
                     where: str) -> None:
    """Raise unless `doc` (a plan file's JSON) is exactly the re-derived plan."""
    saved = from_document(doc)  # a malformed file is refused here
    expected = json.loads(json.dumps(to_document(derived)))  # as save_plan writes it
    found = mismatches(doc, expected)
    if not found:
        return
    fp = saved.fingerprints
    if isinstance(fp.desired_hash, str) and isinstance(fp.live_hash, str):
        check_fresh(saved, derived.fingerprints)  # moved inputs: say "stale", not "edited"
    check_prune_scope(doc, inventory, where)
    named = "\n".join(f"  {_where(m.path, expected)}{m.describe()}" for m in found[:SHOWN])
    more = f"\n  ... and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
    raise VirtsyncError(
        f"saved plan {where} refused: it differs from the plan re-derived from the tree "
        f"and live state in {len(found)} field(s); nothing was changed (safety rule 15):\n"
        f"{named}{more}\nrun `virtsync plan --out-file` again and review it")


def _where(path: str, expected: Mapping[str, Any]) -> str:
    """The object a mismatch belongs to, as re-derived: 'VirtualMachine/ns/web: '."""
    if not path.startswith("changes["):
        return ""
    index = int(path[len("changes["):path.index("]")])
    changes = expected["changes"]
    return f"{changes[index]['key']}: " if index < len(changes) else "(extra change): "
