"""Live-migration vocabulary and the migration policy (issue 10). Pure.

KubeVirt's `LiveMigratable` condition reasons (staging/src/kubevirt.io/api/core/v1/types.go,
"These are valid reasons for VMI conditions") and eviction strategies are enums here; the
rules that produce them live in `reconciler.planning.migratable` and
`reconciler.planning.eviction`.

The policy carries KubeVirt's MigrationPolicy fields (`bandwidthPerMigration`,
`completionTimeoutPerGiB`, `allowAutoConverge`, `allowPostCopy`) plus virtsync's
`allowBlockMigration`. It is set for the whole cluster in the Cluster object
(`spec.migration`) and per VM by annotations `migration.virtsync.io/<field>` (KubeVirt
selects MigrationPolicy objects by labels; virtsync keeps the override on the VM itself
so a pull request shows it). A VM's annotation wins over the cluster's value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any

from reconciler.core.model import JSON, Issue, JSONPath, VirtsyncError, format_path

# core.quantity (and fractions) only where a quantity is read: `validate` reads every VM's
# annotations, and few name a migration bandwidth (issue 13: a warm run after an edit).

POLICY_ANNOTATION_PREFIX = "migration.virtsync.io/"
CONDITION_TYPE = "LiveMigratable"
ISSUE_RULE = "semantic.migration-policy"


class NotMigratable(StrEnum):
    """Why a VM cannot be live-migrated: KubeVirt's reasons, spelt as KubeVirt spells them
    (its CPU reason really is "CPUModeLiveMigratable"), plus virtsync's own for a move
    that has no second node."""

    DISKS = "DisksNotLiveMigratable"
    INTERFACE = "InterfaceNotLiveMigratable"
    CPU_MODE = "CPUModeLiveMigratable"
    HOST_DEVICE = "HostDeviceNotLiveMigratable"
    SEV = "SEVNotLiveMigratable"
    TDX = "TDXNotLiveMigratable"
    PERSISTENT_RESERVATION = "PersistentReservationNotLiveMigratable"
    HYPERV_PASSTHROUGH = "HypervPassthroughNotLiveMigratable"
    NO_TARGET = "NoMigrationTarget"  # virtsync: no other node can hold it
    UNSUPPORTED = "BackendCannotLiveMigrate"  # virtsync: the backend has no migrate yet


class MigrationMethod(StrEnum):
    """KubeVirt's VMI status.migrationMethod: memory only, or disks copied too."""

    LIVE = "LiveMigration"
    BLOCK = "BlockMigration"


@dataclass(frozen=True)
class MigrationProgress:
    """One sample of a running migration job (bytes), for a progress line."""

    elapsed: float
    processed: int
    remaining: int
    total: int
    post_copy: bool = False

    @property
    def percent(self) -> int:
        return 100 if self.total <= 0 else min(100, int(100 * self.processed / self.total))


@dataclass(frozen=True)
class MigrationOutcome:
    """How a completed migration went: wall time, the guest's downtime (-1: unknown)."""

    seconds: float
    downtime_ms: int
    method: MigrationMethod
    post_copy: bool = False


class EvictionStrategy(StrEnum):
    """spec.template.spec.evictionStrategy, with KubeVirt's meanings (docs/migration.md)."""

    LIVE_MIGRATE = "LiveMigrate"
    LIVE_MIGRATE_IF_POSSIBLE = "LiveMigrateIfPossible"
    NONE = "None"
    EXTERNAL = "External"


@dataclass(frozen=True)
class MigrationPolicy:
    """How a live migration runs. Defaults are KubeVirt's migration configuration
    defaults (bandwidth unlimited, 150 s per GiB, no auto-converge, no post-copy); block
    migration of node-local disks is off unless allowed."""

    bandwidth_per_migration: str | None = None  # a quantity per second; None: unlimited
    completion_timeout_per_gib: int = 150
    allow_auto_converge: bool = False
    allow_post_copy: bool = False
    allow_block_migration: bool = False

    @property
    def bandwidth_bytes(self) -> int | None:
        if self.bandwidth_per_migration is None:
            return None
        from reconciler.core.quantity import parse_quantity

        value = parse_quantity(self.bandwidth_per_migration)
        return int(value) if value is not None else None

    def timeout_seconds(self, memory_kib: int) -> int:
        """KubeVirt's completion timeout: completionTimeoutPerGiB × the guest's GiB
        (at least one GiB)."""
        gib = max(1, -(-memory_kib // (1024 * 1024)))
        return self.completion_timeout_per_gib * gib


# camelCase field → (dataclass field, kind) for parsing both places the policy is written.
_FIELDS: Mapping[str, tuple[str, str]] = {
    "bandwidthPerMigration": ("bandwidth_per_migration", "quantity"),
    "completionTimeoutPerGiB": ("completion_timeout_per_gib", "int"),
    "allowAutoConverge": ("allow_auto_converge", "bool"),
    "allowPostCopy": ("allow_post_copy", "bool"),
    "allowBlockMigration": ("allow_block_migration", "bool"),
}
assert {f for f, _ in _FIELDS.values()} == {f.name for f in fields(MigrationPolicy)}


def _value(raw: JSON, kind: str, *, text: bool) -> Any:
    """One field's value; `text`: it comes from an annotation (always a string)."""
    if kind == "bool":
        if text and raw in ("true", "false"):
            return raw == "true"
        if not text and isinstance(raw, bool):
            return raw
        raise ValueError("expected true or false")
    if kind == "int":
        number = raw
        if text and isinstance(raw, str) and raw.isdigit():
            number = int(raw)
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise ValueError("expected a positive integer")
        return number
    from reconciler.core.quantity import parse_quantity

    amount = None if isinstance(raw, bool) or not isinstance(raw, str | int) \
        else parse_quantity(str(raw))
    if amount is None or amount <= 0:
        raise ValueError("expected a positive quantity such as 64Mi")
    return str(raw)


def parse_policy(raw: JSON, where: str, path: JSONPath,
                 base: MigrationPolicy | None = None) -> MigrationPolicy:
    """The Cluster's `spec.migration` block over `base` (default: KubeVirt's defaults).
    Errors name `where` and the field."""
    policy = base or MigrationPolicy()
    if raw is None:
        return policy
    if not isinstance(raw, Mapping):
        raise VirtsyncError(f"{where}: {format_path(path)}: expected a mapping")
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _FIELDS:
            raise VirtsyncError(f"{where}: {format_path((*path, key))}: unknown field")
        name, kind = _FIELDS[key]
        try:
            changes[name] = _value(value, kind, text=False)
        except ValueError as exc:
            raise VirtsyncError(f"{where}: {format_path((*path, key))}: {exc}") from None
    return replace(policy, **changes)


def _read_annotations(body: Mapping[str, JSON]) -> tuple[dict[str, Any], list[Issue]]:
    """The VM's `migration.virtsync.io/<field>` annotations: the policy changes they
    make, and an Issue (located at the annotation) for each unknown field or bad value."""
    meta = body.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    changes: dict[str, Any] = {}
    issues: list[Issue] = []
    for key, value in (annotations or {}).items():
        if not str(key).startswith(POLICY_ANNOTATION_PREFIX):
            continue
        field = str(key)[len(POLICY_ANNOTATION_PREFIX):]
        path: JSONPath = ("metadata", "annotations", str(key))
        if field not in _FIELDS:
            issues.append(Issue(path, f"unknown migration policy field {field!r} (known: "
                                      f"{', '.join(_FIELDS)})", ISSUE_RULE))
            continue
        name, kind = _FIELDS[field]
        try:
            changes[name] = _value(value, kind, text=True)
        except ValueError as exc:
            issues.append(Issue(path, str(exc), ISSUE_RULE))
    return changes, issues


def annotation_issues(body: Mapping[str, JSON]) -> list[Issue]:
    """What `validate` reports about a VM's migration policy annotations."""
    return _read_annotations(body)[1]


def policy_for(vm_body: Mapping[str, JSON], cluster: MigrationPolicy) -> MigrationPolicy:
    """The policy one VM migrates with: the cluster's, with the VM's annotations over it.
    A bad annotation raises VirtsyncError naming it (validation refuses such a tree)."""
    changes, issues = _read_annotations(vm_body)
    if issues:
        raise VirtsyncError(f"{format_path(issues[0].path)}: {issues[0].message}")
    return replace(cluster, **changes)


def cluster_policy(cluster_body: Mapping[str, JSON] | None,
                   where: str = "Cluster") -> MigrationPolicy:
    """The Cluster object's `spec.migration` (KubeVirt's defaults without one)."""
    spec = cluster_body.get("spec") if cluster_body else None
    raw = spec.get("migration") if isinstance(spec, Mapping) else None
    return parse_policy(raw, where, ("spec", "migration"))


def eviction_strategy(body: Mapping[str, JSON]) -> EvictionStrategy:
    """The VM's evictionStrategy; unset is None, KubeVirt's default when the KubeVirt CR
    sets no cluster-wide strategy."""
    spec = body.get("spec")
    tmpl = spec.get("template") if isinstance(spec, Mapping) else None
    tspec = tmpl.get("spec") if isinstance(tmpl, Mapping) else None
    value = tspec.get("evictionStrategy") if isinstance(tspec, Mapping) else None
    try:
        return EvictionStrategy(value) if isinstance(value, str) else EvictionStrategy.NONE
    except ValueError:
        return EvictionStrategy.NONE
