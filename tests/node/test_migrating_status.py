"""`Migrating` with progress (issue 10), from a domain's job statistics: a pure table,
then the observe call site on test:///default (no job statistics there) staying cheap."""

from __future__ import annotations

import time
from typing import Any

import libvirt
import pytest

from node.cluster.host import _outgoing
from node.lifecycle.migrating import outgoing_migration
from node.lifecycle.status import DomainView, RuntimeRecord, vm_status

OUT = libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT
UNBOUNDED = libvirt.VIR_DOMAIN_JOB_UNBOUNDED
MIB = 1 << 20


@pytest.mark.parametrize(("stats", "percent"), [
    ({}, None),  # libvirt without job statistics keys: no job
    ({"type": libvirt.VIR_DOMAIN_JOB_NONE, "operation": OUT}, None),  # finished
    ({"type": UNBOUNDED}, None),  # libvirt < 3.3: no `operation`, cannot tell: not shown
    ({"type": UNBOUNDED, "operation": libvirt.VIR_DOMAIN_JOB_OPERATION_SAVE}, None),
    ({"type": UNBOUNDED, "operation": libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN}, None),
    ({"type": UNBOUNDED, "operation": OUT}, 100),  # no byte counts yet: total 0
    ({"type": UNBOUNDED, "operation": OUT, "data_total": 400 * MIB,
      "data_processed": 100 * MIB, "data_remaining": 300 * MIB, "time_elapsed": 2500}, 25),
    ({"type": UNBOUNDED, "operation": OUT, "data_total": 10, "data_processed": 15}, 100),
])
def test_job_stats_to_outgoing_migration(stats: dict[str, Any], percent: int | None) -> None:
    found = outgoing_migration(stats)
    assert (found.percent if found else None) == percent


@pytest.mark.parametrize(("state", "printable", "ready"), [
    (libvirt.VIR_DOMAIN_RUNNING, "Migrating", True),  # KubeVirt: the VMI stays Ready
    (libvirt.VIR_DOMAIN_PAUSED, "Paused", False),  # paused by the user: says so
])
def test_running_domain_with_an_outgoing_job_shows_migrating(
        state: int, printable: str, ready: bool) -> None:
    job = outgoing_migration({"type": UNBOUNDED, "operation": OUT, "data_total": 400 * MIB,
                              "data_processed": 100 * MIB, "time_elapsed": 2000})
    reason = libvirt.VIR_DOMAIN_PAUSED_USER if state == libvirt.VIR_DOMAIN_PAUSED else 1
    s = vm_status(DomainView(state, reason, "h", "h", RuntimeRecord(), job), "a", 0.0)
    assert (s.printable_status, s.ready, s.node) == (printable, ready, "a")
    migrating = [c for c in s.conditions if c.type == "Migrating"]
    if printable == "Migrating":
        assert migrating[0].message == "25% copied (100 MiB of 400 MiB, 2 s)"
    else:
        assert not migrating


def test_reading_job_stats_on_the_test_driver_is_cheap() -> None:
    """test:///default has no job statistics: the call fails at once and means no job.
    50 active domains (one call each in observe) cost a few ms at most."""
    conn = libvirt.open("test:///default")
    try:
        dom = conn.lookupByName("test")
        assert _outgoing(dom) is None
        start = time.perf_counter()
        for _ in range(50):
            _outgoing(dom)
        spent = time.perf_counter() - start
    finally:
        conn.close()
    assert spent < 0.02, f"50 job-stat reads took {spent * 1000:.1f} ms"
