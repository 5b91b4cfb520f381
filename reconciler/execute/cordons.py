"""Local cordons: `virtsync drain NODE` / `uncordon NODE` record, like `kubectl cordon`
marking the node object. A node is cordoned when git says `schedulable: false` OR this
state directory records it; `observe` below applies the record to every
observation (the one place), so plan, apply, watch, status and migrate see it alike.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from reconciler.backends.base import Backend, Observation
from reconciler.core.fsutil import write_atomic
from reconciler.core.model import VirtsyncError
from reconciler.core.statedir import state_dir

CORDONS_FILE = "cordons.json"


def load_cordons(state: Path) -> frozenset[str]:
    """The nodes this state directory has cordoned (none when never written)."""
    path = state / CORDONS_FILE
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return frozenset()
    except (OSError, ValueError) as exc:
        raise VirtsyncError(f"{path}: cannot read the cordon record ({exc})") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise VirtsyncError(f"{path}: not a list of node names")
    return frozenset(names)


def save_cordons(state: Path, names: frozenset[str]) -> None:
    state.mkdir(parents=True, exist_ok=True)
    write_atomic(state / CORDONS_FILE, (json.dumps(sorted(names)) + "\n").encode(),
                 durable_dir=True)


def with_cordons(observation: Observation, names: frozenset[str]) -> Observation:
    """The observation with `names` unschedulable (git's own cordons stay). Pure."""
    if not names or not any(n.name in names for n in observation.nodes):
        return observation
    nodes = tuple(replace(n, schedulable=False) if n.name in names else n
                  for n in observation.nodes)
    return replace(observation, nodes=nodes)


def observe(backend: Backend) -> Observation:
    """Observe, turning any unexpected failure into an error (never 'nothing exists')."""
    return checked(backend.observe())


def checked(observation: object) -> Observation:
    """A backend's observation, with the nodes `virtsync drain` cordoned in this state
    directory marked unschedulable: the one place local cordons apply, for every backend."""
    if not isinstance(observation, Observation):
        raise VirtsyncError("backend returned no observation")
    return with_cordons(observation, load_cordons(state_dir()))
