"""VM status (pure): printableStatus and conditions from domain state, runtime record and
spec hashes."""

from __future__ import annotations

import libvirt
import pytest

from node.lifecycle.status import DomainView, RuntimeRecord, unplaced_status, vm_status

NOW = 1000.0


def view(state: int, reason: int = 0, *, live: str | None = "h1", config: str = "h1",
         rt: RuntimeRecord | None = None) -> DomainView:
    return DomainView(state, reason, config, live, rt or RuntimeRecord())


def conds(s):  # type: ignore[no-untyped-def]
    return {c.type: c for c in s.conditions}


@pytest.mark.parametrize(
    ("state", "reason", "printable"),
    [
        (libvirt.VIR_DOMAIN_RUNNING, 1, "Running"),
        (libvirt.VIR_DOMAIN_BLOCKED, 0, "Running"),
        (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_USER, "Paused"),
        (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_MIGRATION, "Migrating"),
        (libvirt.VIR_DOMAIN_PMSUSPENDED, 0, "Paused"),
        (libvirt.VIR_DOMAIN_SHUTDOWN, 0, "Stopping"),
        (libvirt.VIR_DOMAIN_NOSTATE, 0, "Starting"),
    ],
)
def test_printable_status_of_active_states(state: int, reason: int, printable: str) -> None:
    s = vm_status(view(state, reason), "n1", NOW)
    assert s.printable_status == printable
    assert s.ready is (printable == "Running")
    assert s.node == "n1"
    assert conds(s)["Ready"].status is (printable == "Running")


def test_paused_condition_names_the_reason() -> None:
    s = vm_status(view(libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_IOERROR), "n", NOW)
    assert conds(s)["Paused"].reason == "PausedIOError"


def test_stopped_and_stopping_on_request() -> None:
    off = vm_status(view(libvirt.VIR_DOMAIN_SHUTOFF, live=None), "n", NOW)
    assert off.printable_status == "Stopped"
    running = vm_status(view(libvirt.VIR_DOMAIN_RUNNING, rt=RuntimeRecord(intent="stop")),
                        "n", NOW)
    assert running.printable_status == "Stopping"


def test_crash_loop_while_backing_off() -> None:
    rt = RuntimeRecord(failures=3, backoff_until=NOW + 20, last_stop="crashed")
    s = vm_status(view(libvirt.VIR_DOMAIN_SHUTOFF, live=None, rt=rt), "n", NOW)
    assert s.printable_status == "CrashLoopBackOff"
    assert conds(s)["Ready"].message == (
        "guest failed 3 times in a row (crashed); next start in 20s")
    later = vm_status(view(libvirt.VIR_DOMAIN_SHUTOFF, live=None, rt=rt), "n", NOW + 30)
    assert later.printable_status == "Stopped"


def test_restart_required_when_running_incarnation_is_older() -> None:
    s = vm_status(view(libvirt.VIR_DOMAIN_RUNNING, live="old", config="new"), "n", NOW)
    assert conds(s)["RestartRequired"].status is True
    same = vm_status(view(libvirt.VIR_DOMAIN_RUNNING), "n", NOW)
    assert "RestartRequired" not in conds(same)
    off = vm_status(view(libvirt.VIR_DOMAIN_SHUTOFF, live=None, config="new"), "n", NOW)
    assert "RestartRequired" not in conds(off)


def test_unplaced() -> None:
    s = unplaced_status("ErrorUnschedulable", "0/1 nodes are available")
    assert (s.printable_status, s.ready, s.node) == ("ErrorUnschedulable", False, "")
    assert conds(s)["Ready"].message == "0/1 nodes are available"


# One row per libvirt state / paused reason, by libvirt's names (node.lifecycle.status.STATES,
# PAUSED_REASONS): (state, reason, printableStatus, Paused condition reason or None).
P = libvirt.VIR_DOMAIN_PAUSED
STATE_ROWS = [
    (libvirt.VIR_DOMAIN_NOSTATE, 0, "Starting", None),
    (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_BOOTED, "Running", None),
    (libvirt.VIR_DOMAIN_BLOCKED, 0, "Running", None),
    (libvirt.VIR_DOMAIN_SHUTDOWN, 0, "Stopping", None),
    (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN, "Stopped", None),
    (libvirt.VIR_DOMAIN_CRASHED, 0, "Stopped", None),
    (libvirt.VIR_DOMAIN_PMSUSPENDED, 0, "Paused", "GuestSuspended"),
    (P, libvirt.VIR_DOMAIN_PAUSED_UNKNOWN, "Paused", "Paused"),
    (P, libvirt.VIR_DOMAIN_PAUSED_USER, "Paused", "PausedByUser"),
    (P, libvirt.VIR_DOMAIN_PAUSED_MIGRATION, "Migrating", "Migrating"),
    (P, libvirt.VIR_DOMAIN_PAUSED_SAVE, "Paused", "Saving"),
    (P, libvirt.VIR_DOMAIN_PAUSED_DUMP, "Paused", "Dumping"),
    (P, libvirt.VIR_DOMAIN_PAUSED_IOERROR, "Paused", "PausedIOError"),
    (P, libvirt.VIR_DOMAIN_PAUSED_WATCHDOG, "Paused", "PausedWatchdog"),
    (P, libvirt.VIR_DOMAIN_PAUSED_FROM_SNAPSHOT, "Paused", "RestoringSnapshot"),
    (P, libvirt.VIR_DOMAIN_PAUSED_SHUTTING_DOWN, "Stopping", None),
    (P, libvirt.VIR_DOMAIN_PAUSED_SNAPSHOT, "Paused", "Snapshot"),
    (P, libvirt.VIR_DOMAIN_PAUSED_CRASHED, "Paused", "PausedCrashed"),
    # QEMU launched, CPUs not running yet: a guest starting up, not a migration.
    (P, libvirt.VIR_DOMAIN_PAUSED_STARTING_UP, "Starting", None),
    (P, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY, "Migrating", "Migrating"),
    (P, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED, "Paused", "PostcopyFailed"),
    (P, 999, "Paused", "Paused"),  # a reason newer than the table
]


@pytest.mark.parametrize(("state", "reason", "printable", "paused"), STATE_ROWS,
                         ids=[f"{r[0]}-{r[1]}-{r[2]}" for r in STATE_ROWS])
def test_state_table_row(state: int, reason: int, printable: str, paused: str | None) -> None:
    active = state not in (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED)
    s = vm_status(view(state, reason, live="h1" if active else None), "n", NOW)
    assert s.printable_status == printable
    c = conds(s)
    assert (c["Paused"].reason if "Paused" in c else None) == paused


def test_every_paused_reason_libvirt_names_has_a_row() -> None:
    named = {getattr(libvirt, n) for n in dir(libvirt) if n.startswith("VIR_DOMAIN_PAUSED_")
             and n != "VIR_DOMAIN_PAUSED_LAST"}
    assert named <= {r[1] for r in STATE_ROWS if r[0] == P}
