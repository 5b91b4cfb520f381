"""The node's lifecycle agent: libvirt lifecycle events → run-strategy decisions.

    agent = LifecycleAgent(host)      # host: node.cluster.host.NodeHost for one node
    agent.start()                     # registers the callback, checks domains already off
    ...
    agent.stop()

or `python -m node.lifecycle.agent --uri qemu:///system --storage-dir ...` as a long-running process.

libvirt delivers events through its default event loop (virEventRegisterDefaultImpl,
run by one daemon thread per process). The callback only queues the event: the work
(reading metadata, starting a domain) happens on the agent's worker thread, because
calling libvirt from inside the event loop would block the loop that delivers the reply.
Decisions are node.lifecycle.decide.decide; what the agent remembers (consecutive failures,
back-off deadline, last stop) is written to the domain's runtime metadata, so it
survives agent restarts and the backend's status sees it. Only domains carrying
virtsync's owner marker are ever started, and only those of the agent's `Scope`
(rule 18: this installation's, unless it was started for every installation). STARTED
events (and running domains found at start-up) of a VM whose run strategy is Halted are
started outside virtsync: the agent shuts them down gracefully (rule 16, `handle_start`).
"""

from __future__ import annotations

import argparse
import enum
import heapq
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import libvirt

from node.cluster.host import NodeHost
from node.identity.metadata import Scope, parse_owner_metadata
from node.lifecycle.decide import (
    DEFAULT_POLICY,
    HALTED,
    INTENT_HOLD,
    INTENT_STOP,
    BackoffPolicy,
    Decision,
    StopKind,
    decide,
    stop_kind_from_event,
    stop_kind_from_shutoff_reason,
)
from node.lifecycle.stop import press_power_button
from reconciler.core.model import VirtsyncError
from reconciler.core.power import run_strategy

log = logging.getLogger("virtsync.agent")

_loop_lock = threading.Lock()
_loop_started = False


def ensure_event_loop() -> None:
    """Register libvirt's default event implementation and run it on a daemon thread,
    once per process. Connections opened afterwards can deliver events."""
    global _loop_started
    with _loop_lock:
        if _loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _loop_started = True


# A Halted guest started outside virtsync gets the power button every HALT_RETRY seconds
# (a guest still booting has no ACPI listener yet), for at most HALT_GIVE_UP seconds;
# never forced: pulling the power is the operator's call (`virtsync stop --force`).
HALT_RETRY = 2.0
HALT_GIVE_UP = 300.0


class _Due(enum.Enum):
    START = "start"  # start again if still wanted (run strategy, after a back-off)
    HALT = "halt"  # press the power button again if a Halted guest still runs


@dataclass(order=True)
class _Timer:
    at: float
    uuid: str = field(compare=False)
    what: _Due = field(default=_Due.START, compare=False)


class LifecycleAgent:
    def __init__(
        self,
        host: NodeHost,
        *,
        policy: BackoffPolicy = DEFAULT_POLICY,
        clock: Callable[[], float] = time.time,
        scope: Scope | None = None,
    ) -> None:
        self.host = host
        self.scope = scope if scope is not None else host.scope
        self.policy = policy
        self.clock = clock
        # Items: a stop to handle, (uuid,) a start to check, () to wake the worker (new
        # timer), None to quit.
        self._events: queue.Queue[
            tuple[str, StopKind, bool] | tuple[str] | tuple[()] | None] = queue.Queue()
        self._halting: dict[str, float] = {}  # uuid → when to give up pressing the button
        self._timers: list[_Timer] = []
        self._timers_lock = threading.Lock()
        self._callback: int | None = None
        self._worker: threading.Thread | None = None
        self.decisions: list[tuple[str, Decision]] = []  # (domain, decision), newest last

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        ensure_event_loop()
        self.host.close()  # a connection opened before the event loop delivers nothing
        conn = self.host.conn()
        self._callback = conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_event, None
        )
        self._worker = threading.Thread(target=self._work, name="virtsync-agent", daemon=True)
        self._worker.start()
        # Domains that went off while no agent was watching (agent restart, host reboot).
        for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE):
            kind = stop_kind_from_shutoff_reason(dom.state()[1])
            self._events.put((dom.UUIDString(), kind, True))
        # Domains that run against a Halted strategy (started while no agent watched).
        for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            self._events.put((dom.UUIDString(),))

    def stop(self) -> None:
        if self._callback is not None:
            try:
                self.host.conn().domainEventDeregisterAny(self._callback)
            except (libvirt.libvirtError, VirtsyncError):
                pass
            self._callback = None
        self._events.put(None)
        if self._worker is not None:
            self._worker.join(timeout=10)
            self._worker = None

    def _on_event(self, _conn: Any, dom: Any, event: int, detail: int, _opaque: Any) -> None:
        # Runs on the event-loop thread: queue only, never call libvirt from here.
        if event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
            self._events.put((dom.UUIDString(), stop_kind_from_event(detail), False))
        elif event == libvirt.VIR_DOMAIN_EVENT_STARTED:
            self._events.put((dom.UUIDString(),))

    def _work(self) -> None:
        while True:
            with self._timers_lock:
                timeout = max(0.0, self._timers[0].at - self.clock()) if self._timers else None
            try:
                item = self._events.get(timeout=timeout)
            except queue.Empty:
                item = ()
            if item is None:
                return
            if len(item) == 3:
                uuid, kind, at_startup = item
                self._guard(self.handle_stop, uuid, kind, at_startup)
            elif len(item) == 1:
                self._guard(self.handle_start, item[0])
            for timer in self._due():
                fn = self.start_if_still_wanted if timer.what is _Due.START else self.handle_start
                self._guard(fn, timer.uuid)

    def _due(self) -> list[_Timer]:
        with self._timers_lock:
            due = []
            while self._timers and self._timers[0].at <= self.clock():
                due.append(heapq.heappop(self._timers))
            return due

    def _schedule(self, timer: _Timer) -> None:
        with self._timers_lock:
            heapq.heappush(self._timers, timer)
        self._events.put(())  # wake the worker: its wait may be longer than this timer

    def _guard(self, fn: Callable[..., object], *args: Any) -> None:
        try:
            fn(*args)
        except (libvirt.libvirtError, VirtsyncError) as exc:
            log.warning("lifecycle agent: %s", exc)

    # ------------------------------------------------------------------ decisions

    def _managed(self, uuid: str) -> Any | None:
        try:
            dom = self.host.conn().lookupByUUIDString(uuid)
        except libvirt.libvirtError:
            return None  # undefined meanwhile
        owner = parse_owner_metadata(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        return dom if owner is not None and self.scope.manages(owner) else None  # rule 18

    def handle_stop(self, uuid: str, kind: StopKind, at_startup: bool = False) -> Decision | None:
        """Apply the run strategy to a domain that stopped (or was found off)."""
        dom = self._managed(uuid)
        if dom is None or dom.isActive():
            return None
        rec = self.host.record(dom)
        strategy = run_strategy(rec.applied.body) if rec.applied is not None else HALTED
        rt = rec.runtime
        now = self.clock()
        ran_for = now - rt.last_start if rt.last_start and not at_startup else None
        decision = decide(strategy or "", kind, intent=rt.intent, failures=rt.failures,
                          ran_for=ran_for, policy=self.policy, at_startup=at_startup)
        self.decisions.append((rec.domain, decision))
        log.info("%s: %s", rec.domain, decision.reason)
        updated = replace(
            rt,
            failures=decision.failures,
            last_stop=kind.value if not at_startup else rt.last_stop or kind.value,
            backoff_until=now + decision.delay if decision.start else 0.0,
        )
        # Write only what changed, and at start-up only for VMs the agent acts on: a
        # fleet of halted VMs costs no libvirt writes when an agent (re)starts.
        if rt.intent != INTENT_HOLD and updated != rt and (decision.start or not at_startup):
            self.host.set_runtime(dom, updated)
        if decision.start:
            self._schedule(_Timer(now + decision.delay, uuid))
        return decision

    def handle_start(self, uuid: str) -> Decision | None:
        """KubeVirt's Halted: a guest started outside virtsync (`virsh start`) is shut
        down gracefully (rule 16); the plan meanwhile reports the drift."""
        dom = self._managed(uuid)
        rec = self.host.record(dom) if dom is not None and dom.isActive() else None
        halted = rec is not None and rec.applied is not None and \
            run_strategy(rec.applied.body) is HALTED and rec.runtime.intent != INTENT_HOLD
        if rec is None or not halted:
            self._halting.pop(uuid, None)
            return None
        now = self.clock()
        first = uuid not in self._halting
        give_up = self._halting.setdefault(uuid, now + HALT_GIVE_UP)
        if now >= give_up:
            log.warning("%s: runStrategy Halted, but the guest ignored the power button for "
                        "%.0fs; left running (virtsync stop --force powers it off)",
                        rec.domain, HALT_GIVE_UP)
            self._halting.pop(uuid, None)
            return None
        decision = Decision(False, 0.0, rec.runtime.failures,
                            "Halted: running (started outside virtsync); shutting it down")
        if first:
            self.decisions.append((rec.domain, decision))
            log.info("%s: %s", rec.domain, decision.reason)
        press_power_button(dom)
        self._schedule(_Timer(now + HALT_RETRY, uuid, _Due.HALT))
        return decision

    def start_if_still_wanted(self, uuid: str) -> None:
        dom = self._managed(uuid)
        if dom is None or dom.isActive():
            return
        rec = self.host.record(dom)
        if rec.runtime.intent in (INTENT_STOP, INTENT_HOLD):
            return  # an operator stop or a backend operation came in meanwhile
        self.host.start(dom)


def main(argv: list[str] | None = None) -> int:
    from node.cluster.config import NodeConfig
    from node.cluster.networks import NetworkMap
    from reconciler.core.signals import StopSignals
    from reconciler.core.statedir import installation_id, state_dir

    p = argparse.ArgumentParser(prog="python -m node.lifecycle.agent", description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--uri", default="qemu:///system")
    p.add_argument("--name", default="local")
    p.add_argument("--storage-dir", required=True)
    p.add_argument("--image-dir", required=True)
    p.add_argument("--all-installations", action="store_true",
                   help="act on every virtsync VM, not only this state directory's (rule 18)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # Markers with this state directory's id; `virtsync agent` also knows the id-less
    # markers its inventory lists.
    scope = Scope(installation_id(state_dir()), every_installation=args.all_installations)
    host = NodeHost(NodeConfig(args.name, args.uri, args.storage_dir, args.image_dir),
                    NetworkMap({}), scope=scope)
    agent = LifecycleAgent(host)
    with StopSignals() as stop:  # before the start: a signal sent meanwhile is kept
        agent.start()
        try:
            stop.wait()
        finally:
            agent.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
