"""Live migration on KubeVirt: a VirtualMachineInstanceMigration, followed to its end.

KubeVirt picks the target node (the scheduler, under the VM's placement); a named
target becomes the migration's `addedNodeSelector` (kubernetes.io/hostname), which can
only narrow the VM's own constraints. Phases: Pending, Scheduling, Scheduled,
PreparingTarget, TargetReady, Running, then Succeeded or Failed. A failed migration
leaves the guest running where it was (KubeVirt's guarantee); this raises BackendError.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from enum import StrEnum

from reconciler.backends.base import BackendError
from reconciler.backends.kubevirt.client import Expired, KubeClient
from reconciler.backends.kubevirt.ownership import marks
from reconciler.backends.kubevirt.resources import VMI, VMIM
from reconciler.core.migration import (
    MigrationMethod,
    MigrationOutcome,
    MigrationPolicy,
    MigrationProgress,
)
from reconciler.core.model import JSON, ObjectKey

HOSTNAME_LABEL = "kubernetes.io/hostname"
WATCH_SECONDS = 30  # one watch request at most; then the object is read again
MIN_TIMEOUT = 300.0  # seconds; the policy's per-GiB budget when larger


class Phase(StrEnum):
    PENDING = "Pending"
    SCHEDULING = "Scheduling"
    SCHEDULED = "Scheduled"
    PREPARING_TARGET = "PreparingTarget"
    TARGET_READY = "TargetReady"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


FINAL = frozenset({Phase.SUCCEEDED, Phase.FAILED})


def migration_body(key: ObjectKey, target: str, installation: str) -> dict[str, JSON]:
    spec: dict[str, JSON] = {"vmiName": key.name}
    if target:
        spec["addedNodeSelector"] = {HOSTNAME_LABEL: target}
    return {"apiVersion": VMIM.api_version, "kind": VMIM.kind,
            # named here, not by generateName: the name is known before the request
            "metadata": {"name": f"{key.name}-migration-{uuid.uuid4().hex[:8]}",
                         "namespace": key.namespace,
                         "labels": dict(marks(installation))},
            "spec": spec}


def phase_of(obj: Mapping[str, JSON]) -> Phase | None:
    status = obj.get("status")
    value = status.get("phase") if isinstance(status, Mapping) else None
    try:
        return Phase(value) if isinstance(value, str) else None
    except ValueError:
        return None


def run_migration(client: KubeClient, key: ObjectKey, *, target: str, policy: MigrationPolicy,
                  installation: str, progress: Callable[[MigrationProgress], None] | None,
                  clock: Callable[[], float]) -> MigrationOutcome:
    started = clock()
    created = client.create(VMIM, key.namespace, migration_body(key, target, installation))
    name = _name(created)
    timeout = max(MIN_TIMEOUT, float(policy.completion_timeout_per_gib) * 4)
    obj: Mapping[str, JSON] = created
    while phase_of(obj) not in FINAL:
        left = timeout - (clock() - started)
        if left <= 0:
            client.delete(VMIM, key.namespace, name)  # KubeVirt aborts it: source kept
            raise BackendError(f"{key}: migration {name} did not finish in {timeout:.0f} s; "
                               "aborted, the VM keeps running where it was")
        obj = _next(client, key, name, obj, min(WATCH_SECONDS, max(1, int(left))))
        if progress is not None:
            progress(MigrationProgress(clock() - started, 0, 0, 0))
    if phase_of(obj) is Phase.FAILED:
        raise BackendError(f"{key}: migration {name} failed; the VM keeps running on its "
                           "source node")
    return MigrationOutcome(clock() - started, -1, _method(client, key))


def _next(client: KubeClient, key: ObjectKey, name: str, obj: Mapping[str, JSON],
          seconds: int) -> Mapping[str, JSON]:
    """The migration after its next change: a watch from the version last seen, ended
    by the first event with a new phase (or by the server after `seconds`); then the
    object is read again, which also covers a watch that expired (410)."""
    meta = obj.get("metadata")
    version = str(meta.get("resourceVersion", "")) if isinstance(meta, Mapping) else ""
    try:
        for kind, event in client.watch(VMIM, key.namespace, name, resource_version=version,
                                        timeout=seconds):
            if kind == "DELETED":
                break
            if phase_of(event) != phase_of(obj):
                return event
    except Expired:
        pass
    found = client.get(VMIM, key.namespace, name)
    if found is None:
        raise BackendError(f"{key}: migration {name} was deleted before it finished")
    return found


def _method(client: KubeClient, key: ObjectKey) -> MigrationMethod:
    vmi = client.get(VMI, key.namespace, key.name)
    status = vmi.get("status") if vmi is not None else None
    value = status.get("migrationMethod") if isinstance(status, Mapping) else None
    return MigrationMethod.BLOCK if value == MigrationMethod.BLOCK else MigrationMethod.LIVE


def cancel(client: KubeClient, key: ObjectKey) -> bool:
    """Delete the VM's unfinished migrations (KubeVirt aborts them); False: none ran."""
    done = False
    for m in client.list(VMIM, key.namespace):
        spec = m.get("spec")
        if isinstance(spec, Mapping) and spec.get("vmiName") == key.name \
                and phase_of(m) not in FINAL:
            done = client.delete(VMIM, key.namespace, _name(m)) or done
    return done


def _name(obj: Mapping[str, JSON]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name", "")) if isinstance(meta, Mapping) else ""
