"""A VirtualMachine's status as KubeVirt reports it, in virtsync's terms. Pure.

printableStatus, Ready and the conditions (RestartRequired, LiveMigratable, Ready,
Paused, ...) are KubeVirt's own, copied; the node is the running instance's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from reconciler.core.model import JSON, PrintableStatus
from reconciler.core.status import Condition, VMStatus


def vm_status(vm: Mapping[str, JSON], vmi: Mapping[str, JSON] | None, *,
              stop_requested: bool = False) -> VMStatus:
    status = _map(vm.get("status"))
    raw = status.get("printableStatus")
    try:
        printable = PrintableStatus(raw) if isinstance(raw, str) else PrintableStatus.STOPPED \
            if not status.get("created") else PrintableStatus.UNKNOWN
    except ValueError:
        printable = PrintableStatus.UNKNOWN
    conditions = tuple(_condition(c) for c in _list(status.get("conditions"))
                       if isinstance(c, Mapping) and isinstance(c.get("type"), str))
    node = _map(vmi.get("status")).get("nodeName") if vmi is not None else None
    return VMStatus(printable, ready=status.get("ready") is True,
                    node=node if isinstance(node, str) else "", conditions=conditions,
                    created_at=_timestamp(_map(vm.get("metadata")).get("creationTimestamp")),
                    stop_requested=stop_requested)


def _condition(c: Mapping[str, JSON]) -> Condition:
    return Condition(str(c.get("type")), c.get("status") == "True",
                     str(c.get("reason") or ""), str(c.get("message") or ""))


def _timestamp(value: JSON) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _map(value: JSON | None) -> Mapping[str, JSON]:
    return value if isinstance(value, Mapping) else {}


def _list(value: JSON | None) -> list[JSON]:
    return value if isinstance(value, list) else []
