"""Eviction strategies on drain (reconciler.planning.eviction): one row per strategy and
case, each citing the KubeVirt behaviour it mirrors."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from reconciler.core.migration import EvictionStrategy, MigrationMethod, NotMigratable
from reconciler.core.power import RunStrategy
from reconciler.planning.eviction import DrainAction, drain_step
from reconciler.planning.migratable import Blocker, Migratability

OK = Migratability()
OK_BLOCK = Migratability(method=MigrationMethod.BLOCK)
NOT = Migratability((Blocker(NotMigratable.DISKS, "claim root is on node-local storage"),))
LM, LMIP = EvictionStrategy.LIVE_MIGRATE, EvictionStrategy.LIVE_MIGRATE_IF_POSSIBLE
NONE, EXT = EvictionStrategy.NONE, EvictionStrategy.EXTERNAL


@dataclass(frozen=True)
class Row:
    id: str
    kubevirt: str
    strategy: EvictionStrategy
    migration: Migratability
    action: DrainAction
    running: bool = True
    run_strategy: RunStrategy = RunStrategy.ALWAYS
    starts_again: bool = False
    says: str = ""


ROWS = (
    Row("lm-migratable", "LiveMigrate: the eviction webhook turns the eviction into a "
        "migration (pod-eviction-admitter.go)", LM, OK, DrainAction.MIGRATE,
        says="memory only"),
    Row("lm-block-migration", "same, with the disks copied (virtsync's block migration)",
        LM, OK_BLOCK, DrainAction.MIGRATE, says="block migration"),
    Row("lm-not-migratable", "LiveMigrate, not migratable: the PDB/webhook deny the "
        "eviction, the drain blocks, saying why", LM, NOT, DrainAction.BLOCK,
        says="DisksNotLiveMigratable"),
    Row("lmip-migratable", "LiveMigrateIfPossible migrates when it can (kubevirt#9798)",
        LMIP, OK, DrainAction.MIGRATE),
    Row("lmip-not-migratable", "LiveMigrateIfPossible, not migratable: evicted instead "
        "(kubevirt#9798); runStrategy Always starts it on another node", LMIP, NOT,
        DrainAction.SHUTDOWN, starts_again=True, says="DisksNotLiveMigratable"),
    Row("lmip-manual", "same, runStrategy Manual: KubeVirt does not start it again",
        LMIP, NOT, DrainAction.SHUTDOWN, run_strategy=RunStrategy.MANUAL,
        says="stays stopped"),
    Row("none-migratable", "None: no PDB, the virt-launcher pod is evicted even when "
        "migratable", NONE, OK, DrainAction.SHUTDOWN, starts_again=True),
    Row("none-rerun", "None, RerunOnFailure: the VM controller starts it again",
        NONE, NOT, DrainAction.SHUTDOWN, run_strategy=RunStrategy.RERUN_ON_FAILURE,
        starts_again=True),
    Row("external", "External: eviction blocked, status.evacuationNodeName set for an "
        "external controller (kubevirt#7493)", EXT, OK, DrainAction.EXTERNAL,
        says="evacuationNodeName"),
    Row("external-not-migratable", "External does not look at migratability", EXT, NOT,
        DrainAction.EXTERNAL),
    Row("stopped-lm", "a stopped VM has no virt-launcher pod to evict: its definition moves",
        LM, NOT, DrainAction.MOVE, running=False),
    Row("stopped-external", "same for External", EXT, OK, DrainAction.MOVE, running=False),
)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_eviction_strategy_table(row: Row) -> None:
    step = drain_step(row.strategy, running=row.running, migration=row.migration,
                      run_strategy=row.run_strategy)
    assert step.action is row.action, row.kubevirt
    assert step.starts_again is row.starts_again, row.kubevirt
    assert row.says in step.reason
    assert step.empties_node is (row.action not in (DrainAction.BLOCK, DrainAction.EXTERNAL))


def test_unset_strategy_is_none() -> None:
    """KubeVirt's default when neither the VM nor the KubeVirt CR sets one."""
    from reconciler.core.migration import eviction_strategy

    assert eviction_strategy({"spec": {"template": {"spec": {}}}}) is NONE
    assert eviction_strategy({"spec": {"template": {"spec": {
        "evictionStrategy": "LiveMigrate"}}}}) is LM
