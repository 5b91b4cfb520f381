"""Run strategies as KubeVirt means them, and what a change may do to a VM's power state
(safety rule 16: an update never changes power state unless the run strategy demands
it). Pure: shared by the planner (reconciler.planning.plan) and the node (node.lifecycle.decide,
node.lifecycle.agent).

| strategy       | KubeVirt keeps the VM                                                |
| -------------- | -------------------------------------------------------------------- |
| Always         | running; restarted whatever stopped it (not after an operator stop)  |
| RerunOnFailure | running until the guest shuts down cleanly; restarted on failure     |
| Once           | running once; never restarted after it completes                     |
| Manual         | as the operator left it (`virtsync start` / `virtsync stop`)         |
| Halted         | stopped; a guest started from outside is stopped again               |

A plan (apply, watch, drift healing) starts or stops an existing VM only when:
- git changes its run strategy: to Always, RerunOnFailure or Once starts a stopped VM
  (this also ends an operator stop); to Halted stops a running one; to Manual keeps it;
- the strategy is unchanged but its demand is not met: Halted and running (started
  outside virtsync) is stopped; Always and stopped, without an operator stop and not
  backing off after failures (the lifecycle agent owns that), is started.
Any other edit leaves the power state alone: a stopped Manual, Once or RerunOnFailure VM
stays stopped, and so does one the operator stopped.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.core.model import JSON


class RunStrategy(enum.StrEnum):
    ALWAYS = "Always"
    RERUN_ON_FAILURE = "RerunOnFailure"
    ONCE = "Once"
    MANUAL = "Manual"
    HALTED = "Halted"


class PowerAction(enum.Enum):
    NONE = "none"
    START = "start"
    STOP = "stop"


def run_strategy(body: Mapping[str, JSON]) -> RunStrategy | None:
    """The run strategy of a VM body (see `spec_run_strategy`)."""
    spec = body.get("spec")
    return spec_run_strategy(spec if isinstance(spec, Mapping) else {})


def spec_run_strategy(spec: Mapping[str, JSON]) -> RunStrategy | None:
    """The one place `running` becomes a run strategy: `spec.runStrategy`, else the
    deprecated `spec.running` (true: Always), else KubeVirt's default Halted. None for a
    value KubeVirt does not know (validation refuses it in git; a live body may predate
    that)."""
    value = spec.get("runStrategy")
    if isinstance(value, str) and value:
        try:
            return RunStrategy(value)
        except ValueError:
            return None
    return RunStrategy.ALWAYS if spec.get("running") is True else RunStrategy.HALTED


def starts_on_create(strategy: RunStrategy | str | None) -> bool:
    """Whether a newly defined VM is started (KubeVirt: Always, RerunOnFailure, Once)."""
    return strategy in (RunStrategy.ALWAYS, RunStrategy.RERUN_ON_FAILURE, RunStrategy.ONCE)


@dataclass(frozen=True)
class PowerFacts:
    """What the node says about a VM's power: running, held off by `virtsync stop`, or
    held off by the lifecycle agent's back-off after repeated failures."""

    running: bool
    operator_stop: bool = False
    backoff: bool = False


def power_action(before: RunStrategy | None, after: RunStrategy | None,
                 facts: PowerFacts) -> PowerAction:
    """What a plan does to the power state of an existing VM (rule 16; see above).
    `before` is the run strategy last applied, `after` the one in git."""
    if after is None:
        return PowerAction.NONE
    if after is RunStrategy.HALTED:
        return PowerAction.STOP if facts.running else PowerAction.NONE
    if facts.running:
        return PowerAction.NONE  # only Halted ever asks a running guest to stop
    if before is not after:
        return PowerAction.NONE if after is RunStrategy.MANUAL else PowerAction.START
    if after is RunStrategy.ALWAYS and not facts.operator_stop and not facts.backoff:
        return PowerAction.START
    return PowerAction.NONE
