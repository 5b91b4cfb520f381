"""A VM's KubeVirt-like status, as a backend reports it and the CLI prints it. In the
core so the node (which must not import the backends) produces it directly."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.core.model import PrintableStatus


@dataclass(frozen=True)
class Condition:
    type: str  # Ready, Paused, RestartRequired, ...
    status: bool
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class VMStatus:
    """KubeVirt-like status of one VM as the backend sees it."""

    printable_status: PrintableStatus
    ready: bool = False
    node: str = ""
    conditions: tuple[Condition, ...] = ()
    created_at: float | None = None  # epoch seconds when the VM was first created
    # `virtsync stop` holds the guest off until `virtsync start` or git changes its run
    # strategy (KubeVirt: a stop request); a plan never starts it meanwhile (rule 16).
    stop_requested: bool = False
