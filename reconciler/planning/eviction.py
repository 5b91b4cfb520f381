"""What draining a node does to each VM on it, by `spec.template.spec.evictionStrategy`
with KubeVirt's meanings. Pure; `virtsync drain` (and `schedulable: false` in git)
executes the decision.

| strategy              | migratable          | not migratable                         |
| --------------------- | ------------------- | -------------------------------------- |
| LiveMigrate           | live-migrated       | the drain blocks, saying why           |
| LiveMigrateIfPossible | live-migrated       | shut down, moved (restarted elsewhere) |
| None (the default)    | shut down, moved    | shut down, moved                       |
| External              | left for an external controller (KubeVirt blocks the eviction) |

KubeVirt: LiveMigrate protects the VMI with a PodDisruptionBudget and its eviction
webhook turns the eviction into a migration, denying it when the VMI is not migratable
(pkg/virt-api/webhooks/validating-webhook/admitters/pod-eviction-admitter.go);
LiveMigrateIfPossible (kubevirt/kubevirt#9798) lets a non-migratable VMI be evicted
instead; None has no budget, so the virt-launcher pod is evicted and the guest shut down,
and the VM controller starts it again elsewhere when its run strategy says so; External
(kubevirt/kubevirt#7493) blocks the eviction and sets `status.evacuationNodeName` for a
controller outside KubeVirt. A stopped VM has nothing to evict: its definition moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from reconciler.core.migration import EvictionStrategy
from reconciler.core.power import RunStrategy
from reconciler.planning.migratable import Migratability

# Run strategies under which KubeVirt starts a shut-down (evicted) VM again.
RESTARTED = frozenset({RunStrategy.ALWAYS, RunStrategy.RERUN_ON_FAILURE})


class DrainAction(StrEnum):
    MIGRATE = "migrate"  # live-migrated: the guest keeps running
    SHUTDOWN = "shutdown"  # stopped gracefully, defined on another node
    MOVE = "move"  # not running: only its definition moves
    BLOCK = "block"  # the drain stops here: LiveMigrate and not migratable
    EXTERNAL = "external"  # left running for an external controller


@dataclass(frozen=True)
class DrainStep:
    action: DrainAction
    reason: str
    starts_again: bool = False  # SHUTDOWN: the run strategy starts it on the new node

    @property
    def empties_node(self) -> bool:
        """The VM leaves the node (a blocked or external VM keeps the drain waiting)."""
        return self.action not in (DrainAction.BLOCK, DrainAction.EXTERNAL)


def _shutdown(why: str, strategy: RunStrategy | None) -> DrainStep:
    again = strategy in RESTARTED
    after = (f"started again on the new node (runStrategy {strategy})" if again
             else f"stays stopped (runStrategy {strategy or 'unknown'})")
    return DrainStep(DrainAction.SHUTDOWN, f"{why}: shut down gracefully, moved, {after}",
                     starts_again=again)


def drain_step(eviction: EvictionStrategy, *, running: bool, migration: Migratability,
               run_strategy: RunStrategy | None) -> DrainStep:
    """What draining its node does to one VM."""
    if not running:
        return DrainStep(DrainAction.MOVE, "not running: its definition moves, no guest "
                                           "downtime")
    if eviction is EvictionStrategy.EXTERNAL:
        return DrainStep(DrainAction.EXTERNAL,
                         "evictionStrategy External: left running for an external "
                         "controller (KubeVirt blocks the eviction and sets "
                         "status.evacuationNodeName); the drain waits for it")
    if eviction is EvictionStrategy.NONE:
        return _shutdown("evictionStrategy None", run_strategy)
    if migration.migratable:
        return DrainStep(DrainAction.MIGRATE,
                         f"evictionStrategy {eviction}: {migration.describe()}")
    if eviction is EvictionStrategy.LIVE_MIGRATE:
        return DrainStep(DrainAction.BLOCK, f"evictionStrategy LiveMigrate, but not "
                                            f"live-migratable: {migration.describe()}")
    return _shutdown(f"evictionStrategy LiveMigrateIfPossible, not live-migratable "
                     f"({migration.describe()})", run_strategy)
