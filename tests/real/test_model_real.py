"""The trust-model state machine (tests/model/machine.py) on `qemu:///system`, where the
daemon keeps the state: here it also SIGKILLs an apply at a journalled step (the
journal's fault hook, as test_crash_recovery does) and checks the rerun converges.

Guests boot no OS (no disk is bootable), so they cost a QEMU process and no boot time;
as they never answer ACPI, stops pass --force-stop/--force after a 1 s grace period.
A few short sequences in the suite; more by hand:
    VIRTSYNC_MODEL_REAL_EXAMPLES=40 VIRTSYNC_MODEL_REAL_STEPS=20 pytest -s tests/real/test_model_real.py
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from model.machine import STATS, TrustModel
from model.world import Lane

EXAMPLES = int(os.environ.get("VIRTSYNC_MODEL_REAL_EXAMPLES", "4"))
STEPS = int(os.environ.get("VIRTSYNC_MODEL_REAL_STEPS", "12"))
URI = "qemu:///system"
PHASES = tuple(Phase) if os.environ.get("VIRTSYNC_MODEL_SHRINK", "1") == "1" else (
    Phase.explicit, Phase.reuse, Phase.generate)


def test_trust_model_with_kill_on_qemu(libvirt_conn: Any) -> None:
    class OnQemu(TrustModel):
        lane = Lane(uri=URI, grace=1, can_kill=True, acpi=False)

    OnQemu.conn = libvirt_conn
    try:
        run_state_machine_as_test(OnQemu, settings=settings(
            max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
            derandomize=True, database=None, suppress_health_check=list(HealthCheck),
            phases=PHASES))
    finally:
        print(STATS.summary())
