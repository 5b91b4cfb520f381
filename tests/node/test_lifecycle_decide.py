"""Run-strategy decisions (pure): the table in node.lifecycle.decide, intents and back-off."""

from __future__ import annotations

import pytest

from node.lifecycle.decide import (
    BackoffPolicy,
    StopKind,
    decide,
    stop_kind_from_event,
    stop_kind_from_shutoff_reason,
)
from reconciler.core.power import starts_on_create

S, C, F, D = (StopKind.GUEST_SHUTDOWN, StopKind.CRASHED, StopKind.FAILED,
              StopKind.DESTROYED)


@pytest.mark.parametrize(
    ("strategy", "kind", "start"),
    [
        ("Always", S, True), ("Always", C, True), ("Always", F, True), ("Always", D, True),
        ("RerunOnFailure", S, False), ("RerunOnFailure", C, True),
        ("RerunOnFailure", F, True), ("RerunOnFailure", D, False),
        ("Once", S, False), ("Once", C, False),
        ("Manual", S, False), ("Manual", C, False),
        ("Halted", C, False), ("Halted", S, False),
        ("Always", StopKind.OTHER, False),  # migrated away / saved: not ours to restart
    ],
)
def test_strategy_table(strategy: str, kind: StopKind, start: bool) -> None:
    assert decide(strategy, kind).start is start


def test_operator_stop_and_hold_win_over_always() -> None:
    assert decide("Always", S, intent="stop").start is False
    assert decide("Always", C, intent="hold").start is False


def test_never_started_domain_is_started_only_by_the_startup_scan() -> None:
    assert decide("Always", StopKind.NEVER_STARTED).start is False
    assert decide("Always", StopKind.NEVER_STARTED, at_startup=True).start is True
    assert decide("RerunOnFailure", StopKind.NEVER_STARTED, at_startup=True).start is False


def test_backoff_doubles_up_to_cap_and_resets_after_a_long_run() -> None:
    policy = BackoffPolicy(base=10, cap=40, reset_after=300)
    delays = []
    failures = 0
    for _ in range(5):
        d = decide("Always", C, failures=failures, ran_for=1.0, policy=policy)
        failures = d.failures
        delays.append(d.delay)
    assert delays == [0, 10, 20, 40, 40]
    assert decide("Always", C, failures=4, ran_for=1.0, policy=policy).crash_loop
    fresh = decide("Always", C, failures=4, ran_for=301.0, policy=policy)
    assert (fresh.failures, fresh.delay) == (1, 0)


def test_clean_stop_does_not_back_off_nor_forget_failures() -> None:
    d = decide("Always", S, failures=3)
    assert (d.start, d.delay, d.failures) == (True, 0.0, 3)


def test_libvirt_codes_map_to_stop_kinds() -> None:
    assert stop_kind_from_event(0) is S  # VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN
    assert stop_kind_from_event(1) is D
    assert stop_kind_from_event(2) is C
    assert stop_kind_from_event(5) is F
    assert stop_kind_from_shutoff_reason(1) is S  # VIR_DOMAIN_SHUTOFF_SHUTDOWN
    assert stop_kind_from_shutoff_reason(3) is C
    assert stop_kind_from_shutoff_reason(6) is F
    assert stop_kind_from_shutoff_reason(0) is StopKind.NEVER_STARTED


def test_libvirt_constants_match() -> None:
    import libvirt

    assert stop_kind_from_event(libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED) is F
    assert stop_kind_from_event(libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED) is C
    assert stop_kind_from_shutoff_reason(libvirt.VIR_DOMAIN_SHUTOFF_DAEMON) is F


def test_create_and_keep_running() -> None:
    assert [s for s in ("Always", "RerunOnFailure", "Once", "Manual", "Halted")
            if starts_on_create(s)] == ["Always", "RerunOnFailure", "Once"]
