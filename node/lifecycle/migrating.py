"""Whether a domain is migrating out, from its job statistics (`virDomainGetJobStats`):
a pure mapping, so `virtsync status` can show KubeVirt's `Migrating` with progress.

Older libvirt leaves out keys (`operation` arrived in 3.3, `data_*` only while memory is
copied): a missing `type` or `operation` means no outgoing migration, missing byte
counts mean 0."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import libvirt

from reconciler.core.migration import MigrationProgress
from reconciler.core.status import Condition

CONDITION = "Migrating"  # KubeVirt's printableStatus word, here also the condition type


def outgoing_migration(stats: Mapping[str, Any]) -> MigrationProgress | None:
    """The progress of the domain's outgoing migration job, None when it has none."""
    if stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) == libvirt.VIR_DOMAIN_JOB_NONE:
        return None
    if stats.get("operation") != libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT:
        return None
    return MigrationProgress(int(stats.get("time_elapsed", 0)) / 1000,
                             int(stats.get("data_processed", 0)),
                             int(stats.get("data_remaining", 0)),
                             int(stats.get("data_total", 0)))


def migrating_condition(progress: MigrationProgress) -> Condition:
    return Condition(CONDITION, True, "MigrationInProgress",
                     f"{progress.percent}% copied ({progress.processed >> 20} MiB of "
                     f"{progress.total >> 20} MiB, {progress.elapsed:.0f} s)")
