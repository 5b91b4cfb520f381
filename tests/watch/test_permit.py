"""Which planned changes a watch cycle runs (reconciler/watch/permit.py). Pure."""

from __future__ import annotations

from pathlib import Path

import pytest
from plan.plan_helpers import plan_of, vm
from watch_helpers import make_rig

from reconciler.execute.apply import ApplyOptions
from reconciler.execute.inventory import Inventory, InventoryEntry
from reconciler.watch.permit import permit

HEAD = vm("a", cores=4)  # a restart; b and c left git
BASE = vm("a") + "---\n" + vm("b") + "---\n" + vm("c")


def _inventory(names: str) -> Inventory:
    plan = plan_of(BASE, "")
    keys = [c.key for c in plan.changes if c.key.name in names]
    return Inventory("src", {k: InventoryEntry(k) for k in keys})


def _run(options: ApplyOptions, *, defer: bool = False, inventory: str = "abc") -> list[str]:
    plan = plan_of(HEAD, BASE)
    allowed = permit(plan, {}, options, _inventory(inventory), defer_deletions=defer)
    return sorted(c.key.name for c in allowed.runnable)


def test_a_refused_change_does_not_hold_the_others() -> None:
    plan = plan_of(HEAD, BASE)
    allowed = permit(plan, {}, ApplyOptions(prune=True, max_prune=5), _inventory("abc"),
                     defer_deletions=False)
    assert [r.key.name for r in allowed.refusals] == ["a"]
    assert sorted(c.key.name for c in allowed.runnable) == ["b", "c"]


def test_deletions_wait_for_prune_a_full_read_and_the_cap() -> None:
    everything = ApplyOptions(allow_restart=True, prune=True, max_prune=5)
    assert _run(everything) == ["a", "b", "c"]
    assert _run(everything, defer=True) == ["a"]  # a partial read of the working tree
    assert _run(ApplyOptions(allow_restart=True)) == ["a"]  # no --prune: skipped
    # An explicit --max-prune 0 prunes nothing; over the cap nothing is pruned at all.
    assert _run(ApplyOptions(allow_restart=True, prune=True, max_prune=0)) == ["a"]
    assert _run(ApplyOptions(allow_restart=True, prune=True, max_prune=1)) == ["a"]
    # The default cap: 20 % of the inventory, at least one.
    assert _run(ApplyOptions(allow_restart=True, prune=True), inventory="ab") == ["a"]


def test_the_permit_says_why_deletions_did_not_run() -> None:
    plan = plan_of(HEAD, BASE)
    inv = _inventory("abc")
    skipped = permit(plan, {}, ApplyOptions(), inv, defer_deletions=False)
    deferred = permit(plan, {}, ApplyOptions(prune=True), inv, defer_deletions=True)
    capped = permit(plan, {}, ApplyOptions(prune=True, max_prune=1), inv,
                    defer_deletions=False)
    assert sorted(k.name for k in skipped.skipped) == ["b", "c"] and not skipped.capped
    assert sorted(k.name for k in deferred.deferred) == ["b", "c"] and not deferred.skipped
    assert (sorted(k.name for k in capped.capped), capped.cap) == (["b", "c"], 1)


def test_a_refused_change_is_not_adopted_into_a_lost_inventory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the inventory is lost, what matches git is adopted again; a VM whose change
    was refused does not match git and must not be recorded as applied from it."""
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    rig = make_rig(tmp_path, vms=2, run="Always")
    try:
        first = rig.make_watcher()
        first.startup()
        first.close()
        for f in (rig.state / "inventory").glob("*.json"):
            f.unlink()
        rig.write_vm("vm0", run="Always", cores=2)  # restart class: refused
        w = rig.make_watcher()
        report = w.startup()
        assert [r.key.name for r in report.refusals] == ["vm0"]
        assert sorted(k.name for k in w.inventory.entries) == ["local", "vm1"]
    finally:
        rig.cleanup()
