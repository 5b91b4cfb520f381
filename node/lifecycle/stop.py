"""Graceful stop of one domain (safety rule 5) and confirmation that it is off (rule 6).

`graceful_stop(dom, grace, force=False)`: press the ACPI power button, then poll until
libvirt reports the domain shut off, for at most `grace` seconds. A guest still running
after that is an error that says so ("guest did not stop within 30s; use --force (may
corrupt data)"); only with `force` is it then destroyed (power pulled), and the error
text makes clear that this may corrupt data. A paused guest cannot react to ACPI: it is
refused unless forced. libvirt's test driver has no ACPI flag, so there the plain
shutdown call (which the test driver carries out at once) stands in for the button.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import libvirt

from reconciler.core.model import VirtsyncError

POLL_SECONDS = 0.1


class StopTimeout(VirtsyncError):
    """The guest did not power off within its grace period and force was not given."""


@dataclass(frozen=True)
class StopResult:
    was_running: bool
    forced: bool
    seconds: float


def is_off(dom: Any) -> bool:
    return not dom.isActive()


def press_power_button(dom: Any) -> None:
    if dom.connect().getType() == "TEST":
        dom.shutdown()
    else:
        dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)


def graceful_stop(
    dom: Any,
    grace: int,
    *,
    force: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> StopResult:
    """Stop `dom` (a libvirt.virDomain) and return only once it is confirmed off."""
    start = clock()
    name = dom.name()
    if is_off(dom):
        return StopResult(False, False, 0.0)
    state = dom.state()[0]
    if state in (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PMSUSPENDED) and not force:
        raise StopTimeout(
            f"domain {name}: guest is paused and cannot react to ACPI shutdown; resume it "
            "first, or use --force (may corrupt data)"
        )
    if state not in (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PMSUSPENDED):
        try:
            press_power_button(dom)
        except libvirt.libvirtError as exc:
            if is_off(dom):  # it went down on its own meanwhile
                return StopResult(True, False, clock() - start)
            if not force:
                raise VirtsyncError(f"domain {name}: ACPI shutdown failed: {exc}") from exc
        deadline = start + grace
        while clock() < deadline:
            if is_off(dom):
                return StopResult(True, False, clock() - start)
            sleep(POLL_SECONDS)
        if is_off(dom):
            return StopResult(True, False, clock() - start)
    if not force:
        raise StopTimeout(
            f"domain {name}: guest did not stop within {grace}s; use --force "
            "(may corrupt data)"
        )
    try:
        dom.destroy()
    except libvirt.libvirtError as exc:
        if not is_off(dom):
            raise VirtsyncError(f"domain {name}: forced stop failed: {exc}") from exc
    if not is_off(dom):
        raise VirtsyncError(f"domain {name}: still running after a forced stop")
    return StopResult(True, True, clock() - start)
