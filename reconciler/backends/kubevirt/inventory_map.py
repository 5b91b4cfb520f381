"""Each source's inventory as a ConfigMap in the cluster, as Flux keeps its inventory.

`virtsync-inventory-<source id>` in the Cluster object's `spec.kubevirt.namespace`
(default: default), data key `inventory.json`: the same document the state directory
would hold. Applied server-side like everything else, and only when it changed (rule 12).
"""

from __future__ import annotations

from reconciler.backends.kubevirt.client import KubeClient
from reconciler.backends.kubevirt.ownership import SOURCE, marks
from reconciler.backends.kubevirt.resources import CONFIG_MAP
from reconciler.core.model import JSON, VirtsyncError

DATA_KEY = "inventory.json"
PREFIX = "virtsync-inventory-"


class InventoryMaps:
    def __init__(self, client: KubeClient, namespace: str, installation: str) -> None:
        self.client = client
        self.namespace = namespace
        self.installation = installation
        self._known: dict[str, bytes | None] = {}  # as last read or written

    def name(self, source: str) -> str:
        return PREFIX + source

    def location(self, source: str) -> str:
        return f"ConfigMap {self.namespace}/{self.name(source)}"

    def read(self, source: str) -> bytes | None:
        found = self.client.get(CONFIG_MAP, self.namespace, self.name(source))
        data = found.get("data") if found is not None else None
        text = data.get(DATA_KEY) if isinstance(data, dict) else None
        if found is not None and not isinstance(text, str):
            raise VirtsyncError(f"{self.location(source)} has no {DATA_KEY}; refusing to "
                                "prune from a damaged inventory: restore or delete it")
        value = text.encode() if isinstance(text, str) else None
        self._known[source] = value
        return value

    def write(self, source: str, data: bytes) -> None:
        if source in self._known and self._known[source] == data:
            return
        labels: dict[str, JSON] = {**marks(self.installation), SOURCE: source}
        body: dict[str, JSON] = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": self.name(source), "namespace": self.namespace,
                         "labels": labels},
            "data": {DATA_KEY: data.decode()},
        }
        self.client.apply(CONFIG_MAP, self.namespace, self.name(source), body)
        self._known[source] = data
