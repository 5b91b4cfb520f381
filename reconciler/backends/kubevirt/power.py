"""Run strategies on a cluster, with KubeVirt's meanings. Pure.

KubeVirt enforces a VM's run strategy itself; its `stop` subresource turns Always (or
RerunOnFailure, or `running: true`) into Halted, and `start` back. So an operator's
stop shows up as a live `Halted` where virtsync last applied something else (the
annotation `virtsync.io/applied-run-strategy`): that is an operator stop, kept until git
changes runStrategy or `virtsync start` (rule 16). With Manual, start/stop change only
the instance, never the spec: nothing to keep.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from reconciler.backends.kubevirt.ownership import APPLIED_RUN_STRATEGY, annotation
from reconciler.core.model import JSON
from reconciler.core.power import RunStrategy, run_strategy


def operator_stopped(live: Mapping[str, JSON]) -> bool:
    """Halted live although virtsync applied a strategy that runs the VM."""
    applied = annotation(live, APPLIED_RUN_STRATEGY)
    return (run_strategy(live) is RunStrategy.HALTED and bool(applied)
            and applied not in (RunStrategy.HALTED, RunStrategy.MANUAL))


def applied_strategy(body: Mapping[str, JSON]) -> str:
    strategy = run_strategy(body)
    return str(strategy) if strategy is not None else ""


def held(body: Mapping[str, JSON]) -> dict[str, JSON]:
    """`body` with the VM kept off: what apply sends while an operator stop holds, so an
    update never starts it (rule 16). `running` and `runStrategy` are exclusive."""
    out = copy.deepcopy(dict(body))
    spec = out.get("spec")
    if isinstance(spec, dict):
        if "running" in spec:
            spec["running"] = False
        else:
            spec["runStrategy"] = str(RunStrategy.HALTED)
    return out


def as_applied(body: Mapping[str, JSON], applied: str) -> dict[str, JSON]:
    """The observed body with the run strategy virtsync applied, while an operator stop
    holds: the stop is power state (status), not drift."""
    out = copy.deepcopy(dict(body))
    spec = out.setdefault("spec", {})
    if isinstance(spec, dict):
        spec.pop("running", None)
        spec["runStrategy"] = applied
    return out
