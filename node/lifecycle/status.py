"""KubeVirt-like status of one VM from what a node sees: a pure function.

Inputs are the domain's libvirt state and reason, the spec hash of the running
incarnation and of the persistent definition, the runtime record the agent keeps
(operator intent, consecutive failures, back-off deadline) and, for a VM that has no
domain, why (unschedulable, missing claim). Output is the core's `VMStatus`, which the
libvirt backend reports as it is.

printableStatus, as KubeVirt prints it:
  Running · Paused · Stopped · Starting · Stopping · CrashLoopBackOff · Migrating ·
  ErrorUnschedulable · ErrorPvcNotFound · Unknown
Conditions: Ready, Paused, RestartRequired (the persistent definition carries a newer
spec hash than the running incarnation: a restart is needed to apply it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import libvirt

from node.lifecycle.decide import INTENT_STOP
from node.lifecycle.migrating import migrating_condition
from reconciler.core.migration import MigrationProgress
from reconciler.core.model import PrintableStatus
from reconciler.core.status import Condition, VMStatus


@dataclass(frozen=True)
class Shown:
    """How one libvirt (state, reason) is shown: printableStatus, and the reason of the
    Paused condition when the guest is paused ('' for none)."""

    printable: PrintableStatus
    paused: str = ""


# virDomainPausedReason → what KubeVirt would show. By libvirt's names, never numbers:
# reason 11 is STARTING_UP (QEMU launched, CPUs not yet running), not a migration.
PAUSED_REASONS: Mapping[int, Shown] = {
    libvirt.VIR_DOMAIN_PAUSED_UNKNOWN: Shown(PrintableStatus.PAUSED, "Paused"),
    libvirt.VIR_DOMAIN_PAUSED_USER: Shown(PrintableStatus.PAUSED, "PausedByUser"),
    libvirt.VIR_DOMAIN_PAUSED_MIGRATION: Shown(PrintableStatus.MIGRATING, "Migrating"),
    libvirt.VIR_DOMAIN_PAUSED_SAVE: Shown(PrintableStatus.PAUSED, "Saving"),
    libvirt.VIR_DOMAIN_PAUSED_DUMP: Shown(PrintableStatus.PAUSED, "Dumping"),
    libvirt.VIR_DOMAIN_PAUSED_IOERROR: Shown(PrintableStatus.PAUSED, "PausedIOError"),
    libvirt.VIR_DOMAIN_PAUSED_WATCHDOG: Shown(PrintableStatus.PAUSED, "PausedWatchdog"),
    libvirt.VIR_DOMAIN_PAUSED_FROM_SNAPSHOT: Shown(PrintableStatus.PAUSED, "RestoringSnapshot"),
    libvirt.VIR_DOMAIN_PAUSED_SHUTTING_DOWN: Shown(PrintableStatus.STOPPING),
    libvirt.VIR_DOMAIN_PAUSED_SNAPSHOT: Shown(PrintableStatus.PAUSED, "Snapshot"),
    libvirt.VIR_DOMAIN_PAUSED_CRASHED: Shown(PrintableStatus.PAUSED, "PausedCrashed"),
    libvirt.VIR_DOMAIN_PAUSED_STARTING_UP: Shown(PrintableStatus.STARTING),
    libvirt.VIR_DOMAIN_PAUSED_POSTCOPY: Shown(PrintableStatus.MIGRATING, "Migrating"),
    libvirt.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED: Shown(PrintableStatus.PAUSED, "PostcopyFailed"),
}
UNKNOWN_PAUSE = Shown(PrintableStatus.PAUSED, "Paused")  # a reason newer than this table

# virDomainState → what KubeVirt would show, for every state not decided by its reason
# (paused) or by the runtime record (running while a stop is requested, shut off while
# backing off).
STATES: Mapping[int, Shown] = {
    libvirt.VIR_DOMAIN_NOSTATE: Shown(PrintableStatus.STARTING),
    libvirt.VIR_DOMAIN_RUNNING: Shown(PrintableStatus.RUNNING),
    libvirt.VIR_DOMAIN_BLOCKED: Shown(PrintableStatus.RUNNING),
    libvirt.VIR_DOMAIN_SHUTDOWN: Shown(PrintableStatus.STOPPING),
    libvirt.VIR_DOMAIN_SHUTOFF: Shown(PrintableStatus.STOPPED),
    libvirt.VIR_DOMAIN_CRASHED: Shown(PrintableStatus.STOPPED),
    libvirt.VIR_DOMAIN_PMSUSPENDED: Shown(PrintableStatus.PAUSED, "GuestSuspended"),
}


def shown(state: int, reason: int) -> Shown:
    """The table lookup alone (no runtime record): one row per state or paused reason."""
    if state == libvirt.VIR_DOMAIN_PAUSED:
        return PAUSED_REASONS.get(reason, UNKNOWN_PAUSE)
    return STATES.get(state, Shown(PrintableStatus.UNKNOWN))


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
    migration: MigrationProgress | None = None  # an outgoing migration job's progress


def unplaced_status(printable: PrintableStatus, message: str) -> VMStatus:
    """Status of a VM that has no domain: ErrorUnschedulable, ErrorPvcNotFound, ..."""
    return VMStatus(
        printable_status=printable,
        ready=False,
        node="",
        conditions=(Condition("Ready", False, printable, message),),
    )


def vm_status(view: DomainView, node: str, now: float) -> VMStatus:
    rt = view.runtime
    row = shown(view.state, view.reason)
    printable, paused_reason = row.printable, row.paused
    if printable is PrintableStatus.RUNNING and rt.intent == INTENT_STOP:
        printable = PrintableStatus.STOPPING
    elif printable is PrintableStatus.STOPPED and rt.backoff_until > now and rt.failures >= 2:
        printable = PrintableStatus.CRASH_LOOP_BACK_OFF

    ready = printable is PrintableStatus.RUNNING
    conditions = [_ready(printable, rt, now)]
    if view.migration is not None and printable is PrintableStatus.RUNNING:
        printable = PrintableStatus.MIGRATING  # the guest keeps running, still Ready
        conditions.append(migrating_condition(view.migration))
    if paused_reason:
        conditions.append(Condition("Paused", True, paused_reason, "the guest is paused"))
    if view.live_hash is not None and view.live_hash != view.config_hash:
        conditions.append(
            Condition(
                "RestartRequired",
                True,
                "SpecChanged",
                f"running incarnation has spec {view.live_hash}; a restart applies "
                f"{view.config_hash}",
            )
        )
    return VMStatus(printable, ready, node, tuple(conditions), created_at=rt.created or None)


def _ready(printable: PrintableStatus, rt: RuntimeRecord, now: float) -> Condition:
    if printable is PrintableStatus.RUNNING:
        return Condition("Ready", True)
    if printable is PrintableStatus.CRASH_LOOP_BACK_OFF:
        wait = max(0.0, rt.backoff_until - now)
        return Condition(
            "Ready",
            False,
            "CrashLoopBackOff",
            f"guest failed {rt.failures} times in a row ({rt.last_stop}); "
            f"next start in {wait:.0f}s",
        )
    if printable is PrintableStatus.STOPPED:
        message = "stopped on request" if rt.intent == INTENT_STOP else (
            f"last stop: {rt.last_stop}" if rt.last_stop else "not running"
        )
        return Condition("Ready", False, "Stopped", message)
    return Condition("Ready", False, printable)
