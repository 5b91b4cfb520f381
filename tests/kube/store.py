"""Object store of the Kubernetes API model: objects by type/namespace/name, the global
resourceVersion counter, and the event log watches read from."""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from typing import Any

from .resources import ResourceType

JSON = dict[str, Any]
Key = tuple[str, str, str, str]  # api_version, kind, namespace ("" if cluster-scoped), name


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    rtype: ResourceType
    obj: JSON


def key_of(rtype: ResourceType, namespace: str | None, name: str) -> Key:
    return (rtype.api_version, rtype.kind, namespace or "" if rtype.namespaced else "", name)


class Store:
    """All state behind one re-entrant lock; `changed` wakes watchers."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.objects: dict[Key, JSON] = {}
        self.rv = 1000
        self.events: list[Event] = []
        self.uid_counter = 0

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def next_uid(self) -> str:
        self.uid_counter += 1
        return f"00000000-0000-4000-8000-{self.uid_counter:012d}"

    def read(self, rtype: ResourceType, namespace: str | None, name: str) -> JSON | None:
        found = self.objects.get(key_of(rtype, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def write(self, rtype: ResourceType, obj: JSON, event: str) -> JSON:
        """Store obj with a new resourceVersion and log the event; returns a copy."""
        meta = obj["metadata"]
        rv = self.next_rv()
        meta["resourceVersion"] = str(rv)
        key = key_of(rtype, meta.get("namespace"), meta["name"])
        if event == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = copy.deepcopy(obj)
        self.events.append(Event(rv, event, rtype, copy.deepcopy(obj)))
        self.changed.notify_all()
        return copy.deepcopy(obj)

    def all_of(self, rtype: ResourceType, namespace: str | None) -> list[JSON]:
        out = [copy.deepcopy(o) for k, o in self.objects.items()
               if k[:2] == (rtype.api_version, rtype.kind)
               and (namespace is None or k[2] == namespace)]
        return sorted(out, key=lambda o: (o["metadata"].get("namespace", ""),
                                          o["metadata"]["name"]))
