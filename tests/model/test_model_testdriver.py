"""The trust-model state machine (tests/model/machine.py) on libvirt's test driver: every
CLI call runs in this process, where one open connection keeps the driver's state; disk
files are real files in a temporary storage directory. `kill -9` needs a real daemon:
tests/real/test_model_real.py runs the same machine with it.

Bounded and derandomized in the suite; for a longer run by hand:
    VIRTSYNC_MODEL_EXAMPLES=500 VIRTSYNC_MODEL_STEPS=25 pytest -s tests/model
Every check is enforced.
"""

from __future__ import annotations

import os

import libvirt
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from .machine import STATS, TrustModel
from .world import Lane

EXAMPLES = int(os.environ.get("VIRTSYNC_MODEL_EXAMPLES", "20"))
STEPS = int(os.environ.get("VIRTSYNC_MODEL_STEPS", "10"))
URI = "test:///default"
# VIRTSYNC_MODEL_SHRINK=0 reports the first failing sequence as found (shrinking a long
# sequence can take minutes).
PHASES = tuple(Phase) if os.environ.get("VIRTSYNC_MODEL_SHRINK", "1") == "1" else (
    Phase.explicit, Phase.reuse, Phase.generate)


def test_trust_model_on_the_test_driver() -> None:
    conn = libvirt.open(URI)  # keeps the test driver's state for every in-process CLI call

    class OnTestDriver(TrustModel):
        lane = Lane(uri=URI, grace=1, can_kill=False, memory_mib=16384)

    OnTestDriver.conn = conn
    try:
        run_state_machine_as_test(OnTestDriver, settings=settings(
            max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
            derandomize=True, database=None, suppress_health_check=list(HealthCheck),
            phases=PHASES))
    finally:
        print(STATS.summary())
        conn.close()
