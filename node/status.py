"""KubeVirt-like status of one VM from what a node sees: a pure function.

Inputs are the domain's libvirt state and reason, the spec hash of the running
incarnation and of the persistent definition, the runtime record the agent keeps
(operator intent, consecutive failures, back-off deadline) and, for a VM that has no
domain, why (unschedulable, missing claim). Output is `NodeVMStatus`, which the
libvirt backend hands on as the reconciler's `VMStatus` (node must not import the
backends).

printableStatus, as KubeVirt prints it:
  Running · Paused · Stopped · Starting · Stopping · CrashLoopBackOff · Migrating ·
  ErrorUnschedulable · ErrorPvcNotFound · Unknown
Conditions: Ready, Paused, RestartRequired (the persistent definition carries a newer
spec hash than the running incarnation: a restart is needed to apply it).
"""

from __future__ import annotations

from dataclasses import dataclass

from node.lifecycle import INTENT_STOP

# virDomainState (ABI-stable values; kept here so this module needs no libvirt).
NOSTATE, RUNNING, BLOCKED, PAUSED, SHUTDOWN, SHUTOFF, CRASHED, PMSUSPENDED = range(8)
# virDomainPausedReason values that mean "a migration is moving this guest".
_PAUSED_MIGRATION = {2, 11}  # VIR_DOMAIN_PAUSED_MIGRATION, VIR_DOMAIN_PAUSED_POSTCOPY
_PAUSED_REASONS = {
    1: "PausedByUser",
    2: "Migrating",
    3: "Saving",
    4: "Dumping",
    5: "PausedIOError",
    6: "PausedWatchdog",
    7: "RestoringSnapshot",
    8: "ShuttingDown",
    9: "Snapshot",
    10: "PausedCrashed",
    11: "Migrating",
    12: "PostcopyFailed",
}


@dataclass(frozen=True)
class NodeCondition:
    type: str
    status: bool
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class NodeVMStatus:
    printable_status: str
    ready: bool
    node: str
    conditions: tuple[NodeCondition, ...]


@dataclass(frozen=True)
class RuntimeRecord:
    """What the node remembers about a VM's incarnations (kept in the domain's metadata)."""

    intent: str = ""
    failures: int = 0
    backoff_until: float = 0.0
    last_start: float = 0.0
    last_stop: str = ""
    created: float = 0.0  # when the VM was first defined on a node (for status AGE)


@dataclass(frozen=True)
class DomainView:
    """The facts `vm_status` needs about one defined domain."""

    state: int
    reason: int
    config_hash: str  # spec hash of the persistent definition
    live_hash: str | None  # spec hash of the running incarnation (None when off)
    runtime: RuntimeRecord = RuntimeRecord()


def unplaced_status(printable: str, message: str) -> NodeVMStatus:
    """Status of a VM that has no domain: ErrorUnschedulable, ErrorPvcNotFound, ..."""
    return NodeVMStatus(
        printable_status=printable,
        ready=False,
        node="",
        conditions=(NodeCondition("Ready", False, printable, message),),
    )


def vm_status(view: DomainView, node: str, now: float) -> NodeVMStatus:
    rt = view.runtime
    paused_reason = ""
    if view.state in (RUNNING, BLOCKED):
        printable = "Stopping" if rt.intent == INTENT_STOP else "Running"
    elif view.state == PAUSED:
        paused_reason = _PAUSED_REASONS.get(view.reason, "Paused")
        printable = "Migrating" if view.reason in _PAUSED_MIGRATION else "Paused"
    elif view.state == PMSUSPENDED:
        paused_reason, printable = "GuestSuspended", "Paused"
    elif view.state == SHUTDOWN:
        printable = "Stopping"
    elif view.state in (SHUTOFF, CRASHED):
        in_backoff = rt.backoff_until > now and rt.failures >= 2
        printable = "CrashLoopBackOff" if in_backoff else "Stopped"
    elif view.state == NOSTATE:
        printable = "Starting"
    else:
        printable = "Unknown"

    ready = printable == "Running"
    conditions = [_ready(printable, rt, now)]
    if paused_reason:
        conditions.append(NodeCondition("Paused", True, paused_reason, "the guest is paused"))
    if view.live_hash is not None and view.live_hash != view.config_hash:
        conditions.append(
            NodeCondition(
                "RestartRequired",
                True,
                "SpecChanged",
                f"running incarnation has spec {view.live_hash}; a restart applies "
                f"{view.config_hash}",
            )
        )
    return NodeVMStatus(printable, ready, node, tuple(conditions))


def _ready(printable: str, rt: RuntimeRecord, now: float) -> NodeCondition:
    if printable == "Running":
        return NodeCondition("Ready", True)
    if printable == "CrashLoopBackOff":
        wait = max(0.0, rt.backoff_until - now)
        return NodeCondition(
            "Ready",
            False,
            "CrashLoopBackOff",
            f"guest failed {rt.failures} times in a row ({rt.last_stop}); "
            f"next start in {wait:.0f}s",
        )
    if printable == "Stopped":
        message = "stopped on request" if rt.intent == INTENT_STOP else (
            f"last stop: {rt.last_stop}" if rt.last_stop else "not running"
        )
        return NodeCondition("Ready", False, "Stopped", message)
    return NodeCondition("Ready", False, printable)
