"""Where the planner's memo of up-to-date objects lives between runs (issue 13).

One file per source in the state directory's cache folder: the digests (reconciler.planning.unchanged)
of the objects the last whole plan found unchanged. Each digest is a fact about a pure
function's inputs, so any writer's file is correct; a missing, damaged or foreign file
is only a slower plan (every object planned in full), never a wrong one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from reconciler.backends.base import Observation
from reconciler.core.fsutil import write_atomic
from reconciler.core.statedir import state_dir
from reconciler.execute.inventory import Inventory
from reconciler.planning.classify import ClassificationProfile
from reconciler.planning.plan_model import Plan
from reconciler.planning.reconcile import Desired, plan_live
from reconciler.planning.unchanged import Notes, UnchangedMemo

FOLDER = "plan-memo"
FORMAT = 1
_DIGEST = re.compile(r"[0-9a-f]{64}")


def memo_path(state: Path, source: str) -> Path:
    # Beside the validation cache: derived data, not state (rule 12's "a run with
    # nothing to do writes nothing" is about state).
    return state / "cache" / FOLDER / f"{source}.json"


def load_memo(state: Path, source: str, desired: Desired) -> UnchangedMemo:
    """The memo the last whole plan of this source left (empty when there is none or it
    cannot be read)."""
    known: dict[str, Notes] = {}
    try:
        rows = json.loads(memo_path(state, source).read_bytes())
        if isinstance(rows, dict) and rows.get("format") == FORMAT:
            for digest, notes in rows["unchanged"].items():
                if _DIGEST.fullmatch(digest):
                    known[digest] = tuple((str(p), str(w)) for p, w in notes)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        known = {}
    return UnchangedMemo(known, desired.hashes)


def save_memo(state: Path, source: str, memo: UnchangedMemo) -> None:
    """What this plan found unchanged (only that: the file never grows past the tree).
    Not fsync'd: losing it costs one slower plan. A state directory that cannot be
    written leaves the plan as it is."""
    if memo.kept == memo.known:
        return
    data = {"format": FORMAT, "unchanged": {d: [list(n) for n in notes]
                                             for d, notes in sorted(memo.kept.items())}}
    try:
        write_atomic(memo_path(state, source),
                     json.dumps(data, separators=(",", ":")).encode(), sync=False)
    except OSError:
        pass


def plan_whole(desired: Desired, observation: Observation, inventory: Inventory, *,
               prune: bool, profile: ClassificationProfile) -> Plan:
    """plan_live for the whole tree, skipping the objects the last whole plan of this
    source found unchanged with the same inputs, and remembering the ones found
    unchanged now (`virtsync plan`, `apply` and watch's full cycles)."""
    state = state_dir()
    memo = load_memo(state, inventory.source, desired)
    plan = plan_live(desired, observation, inventory, prune=prune, profile=profile, memo=memo)
    save_memo(state, inventory.source, memo)
    return plan
