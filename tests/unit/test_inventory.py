"""The prune inventory on disk (issue 14: kills surviving mutants of
reconciler/execute/inventory.py). Prune may only delete what this source applied (rule 15/18), so
a damaged inventory stops prune instead of being guessed at, each source has its own, an
old entry never gains disk deletion, and an unchanged inventory is not rewritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.core.model import ObjectKey, VirtsyncError
from reconciler.execute.inventory import FORMAT, Inventory, InventoryEntry, source_id

KEY = ObjectKey("VirtualMachine", "ns", "web")


def test_source_id_is_stable_short_and_per_checkout(tmp_path: Path) -> None:
    assert source_id(Path("/x/y")) == "62b0ea75ac8650ff"  # the same id across versions
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert source_id(tmp_path / "a") != source_id(tmp_path / "b")
    assert source_id(tmp_path / "link") == source_id(tmp_path / "a")


def _write(state: Path, doc: object) -> Path:
    path = Inventory.path_for(state, "src")
    path.parent.mkdir(parents=True)
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "unreadable"),
    ({"format": "virtsync-inventory/0", "objects": []}, "unknown format"),
    ({"objects": []}, "unknown format"),
])
def test_damaged_inventory_stops_prune(tmp_path: Path, content: object, message: str) -> None:
    _write(tmp_path, content)
    with pytest.raises(VirtsyncError, match=message):
        Inventory.load(tmp_path, "src")


def test_unreadable_inventory_stops_prune(tmp_path: Path) -> None:
    Inventory.path_for(tmp_path, "src").mkdir(parents=True)  # a directory: OSError
    with pytest.raises(VirtsyncError, match="unreadable"):
        Inventory.load(tmp_path, "src")


def test_missing_inventory_is_empty(tmp_path: Path) -> None:
    assert Inventory.load(tmp_path, "src").entries == {}


def test_entry_without_delete_disks_keeps_its_disks(tmp_path: Path) -> None:
    _write(tmp_path, {"format": FORMAT, "objects": [
        {"kind": "VirtualMachine", "namespace": "ns", "name": "web"}]})
    entry = Inventory.load(tmp_path, "src").entries[KEY]
    assert entry.delete_disks is False
    assert InventoryEntry(KEY).delete_disks is False


def test_save_round_trips_and_rewrites_only_changes(tmp_path: Path) -> None:
    inv = Inventory("src", {KEY: InventoryEntry(KEY, "kubevirt.io/v1", "r1", True)})
    inv.save(tmp_path)
    path = Inventory.path_for(tmp_path, "src")
    assert Inventory.load(tmp_path, "src") == inv
    before = path.stat()
    inv.save(tmp_path)  # unchanged: no write at all (rule 12)
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    changed = Inventory("src", {KEY: InventoryEntry(KEY, "kubevirt.io/v1", "r2", True)})
    changed.save(tmp_path)
    assert Inventory.load(tmp_path, "src").entries[KEY].revision == "r2"


@pytest.mark.parametrize(("entries", "cap"), [(0, 1), (4, 1), (9, 1), (10, 2), (27, 5)])
def test_default_prune_cap_is_20_percent_and_at_least_one(entries: int, cap: int) -> None:
    from reconciler.execute.cycle import prune_cap

    keys = [ObjectKey("VirtualMachine", "ns", f"v{i}") for i in range(entries)]
    assert prune_cap(Inventory("src", {k: InventoryEntry(k) for k in keys}), None) == cap
    assert prune_cap(Inventory("src", {}), 3) == 3
