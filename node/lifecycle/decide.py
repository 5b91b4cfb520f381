"""Run strategies as a pure decision: how a VM stopped + its run strategy + what the
operator asked → start it again (now or after a back-off) or leave it off.

| strategy        | guest shutdown | crash / QEMU failure | destroyed from outside |
| --------------- | -------------- | -------------------- | ---------------------- |
| Always          | start          | start (back-off)     | start                  |
| RerunOnFailure  | stay off       | start (back-off)     | stay off               |
| Once            | stay off       | stay off             | stay off               |
| Manual / Halted | stay off       | stay off             | stay off               |

"How it stopped" comes from libvirt: the STOPPED lifecycle event's detail, or, for a
domain found already off (agent restart, host reboot), its shut-off reason. A guest
that powered itself off (ACPI / `poweroff`) is SHUTDOWN; a guest panic is CRASHED; a
QEMU process that died (killed, emulation failure) is FAILED.

An operator stop (`intent == "stop"`) always wins: the VM stays off until an explicit
start. `intent == "hold"` means a backend operation (restart, redefine, delete) owns
the domain right now: the agent must not touch it.

Back-off (KubeVirt's CrashLoopBackOff): the first failure restarts at once; each further
consecutive failure doubles the wait from `base` up to `cap`. An incarnation that ran at
least `reset_after` seconds before failing starts the count again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import libvirt

from reconciler.core.power import RunStrategy

ALWAYS = RunStrategy.ALWAYS
RERUN_ON_FAILURE = RunStrategy.RERUN_ON_FAILURE
ONCE = RunStrategy.ONCE
MANUAL = RunStrategy.MANUAL
HALTED = RunStrategy.HALTED
RUN_STRATEGIES = frozenset(RunStrategy)

INTENT_NONE = ""
INTENT_STOP = "stop"
INTENT_HOLD = "hold"


class StopKind(enum.Enum):
    GUEST_SHUTDOWN = "shutdown"
    CRASHED = "crashed"
    FAILED = "failed"
    DESTROYED = "destroyed"
    NEVER_STARTED = "unknown"  # shut off for an unknown reason (never started, host reboot)
    OTHER = "other"  # migrated away, saved, restored from a snapshot: not ours to restart

    @property
    def is_failure(self) -> bool:
        return self in (StopKind.CRASHED, StopKind.FAILED)


# By libvirt's names, never by number (only the constants are used: still pure).
# virDomainEventStoppedDetailType
_EVENT_DETAIL = {
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: StopKind.GUEST_SHUTDOWN,
    libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED: StopKind.DESTROYED,
    libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED: StopKind.CRASHED,
    libvirt.VIR_DOMAIN_EVENT_STOPPED_MIGRATED: StopKind.OTHER,
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED: StopKind.OTHER,
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED: StopKind.FAILED,
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT: StopKind.OTHER,
}
# virDomainShutoffReason
_SHUTOFF_REASON = {
    libvirt.VIR_DOMAIN_SHUTOFF_UNKNOWN: StopKind.NEVER_STARTED,
    libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN: StopKind.GUEST_SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED: StopKind.DESTROYED,
    libvirt.VIR_DOMAIN_SHUTOFF_CRASHED: StopKind.CRASHED,
    libvirt.VIR_DOMAIN_SHUTOFF_MIGRATED: StopKind.OTHER,
    libvirt.VIR_DOMAIN_SHUTOFF_SAVED: StopKind.OTHER,
    libvirt.VIR_DOMAIN_SHUTOFF_FAILED: StopKind.FAILED,
    libvirt.VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT: StopKind.OTHER,
    libvirt.VIR_DOMAIN_SHUTOFF_DAEMON: StopKind.FAILED,  # libvirtd lost the process
}


def stop_kind_from_event(detail: int) -> StopKind:
    return _EVENT_DETAIL.get(detail, StopKind.OTHER)


def stop_kind_from_shutoff_reason(reason: int) -> StopKind:
    return _SHUTOFF_REASON.get(reason, StopKind.OTHER)


@dataclass(frozen=True)
class BackoffPolicy:
    base: float = 10.0
    cap: float = 300.0
    reset_after: float = 300.0

    def delay(self, failures: int) -> float:
        if failures <= 1:
            return 0.0
        return float(min(self.base * 2 ** (failures - 2), self.cap))


DEFAULT_POLICY = BackoffPolicy()


@dataclass(frozen=True)
class Decision:
    """`start`: start again after `delay` seconds. `failures`: consecutive failures to
    remember. `reason`: one line for logs and status."""

    start: bool
    delay: float
    failures: int
    reason: str

    @property
    def crash_loop(self) -> bool:
        return self.start and self.delay > 0


def decide(
    strategy: str,
    kind: StopKind,
    *,
    intent: str = INTENT_NONE,
    failures: int = 0,
    ran_for: float | None = None,
    policy: BackoffPolicy = DEFAULT_POLICY,
    at_startup: bool = False,
) -> Decision:
    """What to do about a VM that just stopped (or was found off when `at_startup`)."""
    if kind.is_failure:
        fresh = ran_for is not None and ran_for >= policy.reset_after
        count = 1 if fresh else failures + 1
    else:
        count = failures  # only a long enough run resets the count, not a clean stop
    if intent == INTENT_HOLD:
        return Decision(False, 0.0, failures, "a virtsync operation owns the domain")
    if intent == INTENT_STOP:
        return Decision(False, 0.0, count, "stopped on request")
    if strategy not in RUN_STRATEGIES:
        return Decision(False, 0.0, count, f"unknown run strategy {strategy!r}")
    if kind is StopKind.OTHER:
        return Decision(False, 0.0, count, f"stopped ({kind.value}); not restarted")
    restart_when: dict[str, bool] = {
        ALWAYS: kind is not StopKind.NEVER_STARTED or at_startup,
        RERUN_ON_FAILURE: kind.is_failure,
    }
    restart = restart_when.get(strategy, False)
    if not restart:
        return Decision(False, 0.0, count, f"{strategy}: {kind.value}; stays off")
    delay = policy.delay(count) if kind.is_failure else 0.0
    why = f"{strategy}: {kind.value}"
    if delay:
        why += f"; failure {count} in a row, back-off {delay:.0f}s"
    return Decision(True, delay, count, why)
