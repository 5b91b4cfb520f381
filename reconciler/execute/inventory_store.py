"""Where a source's inventory is kept (safety rule 4: prune = inventory − desired).

In the state directory, unless the backend keeps inventories itself: the KubeVirt
backend keeps one ConfigMap per source in the cluster, as Flux keeps its inventory, so
every machine that applies the tree to that cluster prunes from the same record.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.backends.base import Backend, InventoryKeeper
from reconciler.execute.inventory import Inventory


def load_inventory(state: Path, source: str, backend: Backend | None) -> Inventory:
    if isinstance(backend, InventoryKeeper):
        data = backend.read_inventory(source)
        if data is None:
            return Inventory(source, {})
        return Inventory.decode(source, data, backend.inventory_location(source))
    return Inventory.load(state, source)


def save_inventory(state: Path, inventory: Inventory, backend: Backend | None) -> None:
    """Save it where `load_inventory` reads it; an unchanged one makes no write (rule 12:
    the backend compares too)."""
    if isinstance(backend, InventoryKeeper):
        backend.write_inventory(inventory.source, inventory.encode())
        return
    inventory.save(state)
