"""`virtsync watch`: keep the hosts matching the tree, continuously.

    startup ── full read, full observe, plan, apply
    file or ref event ──settle──▶ re-read changed files ──▶ keys whose desired body
        changed ──▶ observe just those ──▶ plan ──▶ apply           (incremental cycle)
    every --interval ──▶ full re-read (stat/blob-id cached) ──▶ full observe ──▶ plan
        ──▶ apply: drift found on an unchanged desired state is restored  (resync)

Every cycle plans from a whole, valid tree: a tree with any error plans and applies
nothing (safety rule 1); the last good state stays in force until the tree is fixed.
Changes the flags and policies do not permit are refused one by one and logged; the
others go ahead (a watcher must not stall every VM because one needs a restart). An
empty plan makes no libvirt write and no state-directory write (rule 12).

Stopping (`request_stop`, SIGTERM in the CLI) lets the action in progress finish, skips
the rest of the cycle, records what was done, and returns from `run()`.
"""

from __future__ import annotations

import gc
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.backends.base import Backend, InventoryKeeper, NodeAgent, Observation
from reconciler.core import signals
from reconciler.core.model import ApplyWord, Manifest, ObjectKey, VirtsyncError
from reconciler.execute.apply import ApplyOptions, Outcome, Refusal
from reconciler.execute.cycle import (
    Run,
    apply_changes,
    new_journal,
    observe_some,
    plan_cycle,
    settle,
)
from reconciler.execute.inventory import Inventory, source_id
from reconciler.execute.inventory_store import load_inventory
from reconciler.execute.journal import unfinished
from reconciler.execute.planmemo import load_memo, save_memo
from reconciler.planning.plan_model import Plan
from reconciler.planning.planned import PlannedBodies
from reconciler.planning.revisions import dependents
from reconciler.planning.unchanged import Notes, UnchangedMemo
from reconciler.tree.source import Desired, Snapshot, TreeSource, changed_keys, open_tree
from reconciler.watch.events import start_observer
from reconciler.watch.logs import JsonLogger
from reconciler.watch.metrics import WatchMetrics
from reconciler.watch.permit import Permit, permit

CLUSTER_KIND = "Cluster"
MAX_LOGGED_FINDINGS = 50

BackendFactory = Callable[[Sequence[Manifest]], Backend]


@dataclass(frozen=True)
class WatchOptions:
    path: str
    git: bool = False
    git_ref: str = "HEAD"
    interval: float = 60.0  # seconds between full resyncs
    debounce: float = 0.01  # coalescing window once every changed file is whole
    max_delay: float = 1.0  # act after this long even if events keep coming or a
    # written file is never closed
    apply: ApplyOptions = field(default_factory=ApplyOptions)  # --prune, its cap, permissions
    agent: bool = True  # run the node lifecycle agent (run strategies) in-process
    agent_every_installation: bool = False  # rule 18: the agent's scope, widened on request


@dataclass(frozen=True)
class CycleReport:
    trigger: str  # startup, change, resync
    result: str  # ok, unchanged, invalid, error, stopped
    keys: int = 0  # objects considered (-1: all)
    changes: int = 0
    outcomes: tuple[Outcome, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    drift: int = 0
    seconds: float = 0.0


_STOP = ("\0stop", True)  # never a path


class Watcher:
    """The watch loop's state: the desired tree, the last accepted desired hashes, the
    backend, the inventory. Not thread-safe except `notify` and `request_stop`."""

    def __init__(
        self,
        options: WatchOptions,
        *,
        state: Path,
        backend_factory: BackendFactory,
        log: JsonLogger | None = None,
        metrics: WatchMetrics | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        on_cycle: Callable[[CycleReport], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.state = state
        self.backend_factory = backend_factory
        self.log = log or JsonLogger()
        self.metrics = metrics
        self.on_outcome = on_outcome
        self.on_cycle = on_cycle
        self.clock = clock
        self.tree: TreeSource = open_tree(options.path,
                                          options.git_ref if options.git else None)
        self.inventory = Inventory.load(state, source_id(self.tree.root))
        self.backend: Backend | None = None
        self.applied: dict[ObjectKey, str] = {}  # body hashes of the last planned tree
        self.retry: set[ObjectKey] = set()  # keys whose action failed: try again next cycle
        self.statuses: dict[ObjectKey, str] = {}
        self._cluster: str | None = None  # body hash of the Cluster object in force
        self._run: Run | None = None  # one journal for the process, opened at the first action
        self._events: queue.Queue[tuple[str, bool]] = queue.Queue()
        self._stop = threading.Event()
        self._agents: list[NodeAgent] = []
        self._observer: Any = None
        self._skipped_logged: set[ObjectKey] = set()
        self._candidates: set[ObjectKey] = set()  # keys that may differ from `applied`
        # What the last full cycle found unchanged (reconciler.planning.unchanged): kept in
        # memory between full cycles; read from, and written to, the state's cache only
        # at start-up, so resyncs of an unchanged tree write nothing (rule 12).
        self._unchanged: dict[str, Notes] | None = None
        self._bodies = PlannedBodies()  # the desired side as whole plans compare it

    # ------------------------------------------------------------------ control

    def notify(self, path: str, whole: bool = False) -> None:
        """A path the tree's watch points name changed (a file, a git ref). Any thread.
        `whole`: the event says the file is complete (closed after writing, renamed into
        place, deleted); otherwise a writer may still be writing it."""
        self._events.put((path, whole))

    def request_stop(self, reason: str = "requested") -> None:
        """Finish the current action, then leave `run()`. Any thread or signal handler."""
        if not self._stop.is_set():
            self.log.info("watch.stopping", reason=reason)
        self._stop.set()
        self._events.put(_STOP)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, *, observe_files: bool = True,
            after_startup: Callable[[], None] | None = None) -> None:
        """Start up, then react to events and resync every interval until stopped.
        `after_startup` runs once the first cycle is done (e.g. to open the metrics port
        only after the cold load, which forks workers only while single-threaded)."""
        self.log.info("watch.start", path=self.options.path,
                      mode="git" if self.options.git else "worktree",
                      ref=self.options.git_ref if self.options.git else None,
                      interval=self.options.interval, prune=self.options.apply.prune)
        try:
            self.startup(observe_files=observe_files)
            if after_startup is not None:
                after_startup()
            next_resync = self.clock() + self.options.interval
            while not self.stopping:
                timeout = max(0.0, next_resync - self.clock())
                try:
                    # Bounded: a signal the kernel gave another thread runs its handler
                    # (request_stop) only once this thread wakes.
                    first = self._events.get(timeout=min(timeout, signals.WAKE_SECONDS))
                except queue.Empty:
                    if self.clock() >= next_resync:
                        self.resync()
                        next_resync = self.clock() + self.options.interval
                    continue
                if first == _STOP:
                    break
                batch = gather(self._events, first, self.options, self.clock)
                if self.stopping:
                    break
                self.on_change(batch)
        finally:
            self.close()
        self.log.info("watch.stopped")

    def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        self._stop_agents()
        if self.backend is not None:
            self.backend.close()
        self.backend = None

    # ------------------------------------------------------------------ cycles

    def startup(self, *, observe_files: bool = False) -> CycleReport:
        """Read the whole tree and reconcile everything. File events are watched from
        just after the read, so a save during a long first apply is not missed."""
        start = self.clock()
        earlier = unfinished(self.state)
        for entry in earlier:
            self.log.warning("journal.unfinished", entry.key, action=entry.action,
                             note="an earlier run stopped mid-action; converging from "
                                  "live state")
        self.tree.refresh()
        if observe_files:
            self._observer = start_observer(self.tree.watch_points(), self.notify)
        report = self._cycle(self.tree.snapshot(), None, "startup", start)
        if report.result == "ok" and self.backend is not None:
            # Converged past a crash: close its journal steps and sweep its temp files.
            unsettled = [Outcome(r.key, ApplyWord.SKIPPED) for r in report.refusals]
            resolved, swept = settle(self.state, self.backend, earlier,
                                     [*report.outcomes, *unsettled])
            if resolved:
                self.log.info("journal.resolved", steps=resolved)
            for path in swept:
                self.log.info("disk.temp-removed", path=path)
        return report

    def resync(self) -> CycleReport:
        """Full re-read (only changed files are parsed) and full observe: finds drift."""
        start = self.clock()
        try:
            self.tree.refresh()
        except VirtsyncError as exc:
            return self._failed("resync", start, exc)
        return self._cycle(self.tree.snapshot(), None, "resync", start)

    def on_change(self, paths: Iterable[str]) -> CycleReport:
        """Re-read what the events name and reconcile just the keys that changed."""
        start = self.clock()
        try:
            changed = self.tree.refresh(set(paths))
        except VirtsyncError as exc:
            return self._failed("change", start, exc)
        if not changed and not self.retry:
            return self._finish(CycleReport("change", "unchanged", seconds=self.clock() - start))
        snap = self.tree.snapshot()
        if not snap.valid or self.backend is None:
            return self._cycle(snap, None, "change", start)
        self._candidates |= self.tree.take_dirty()
        keys = {k for k in self._candidates
                if self.applied.get(k) != snap.hashes.get(k)} | self.retry
        if not keys:
            self._candidates.clear()
            return self._finish(CycleReport("change", "unchanged", 0,
                                             seconds=self.clock() - start))
        if any(k.kind == CLUSTER_KIND for k in keys):
            return self._cycle(snap, None, "change", start)  # nodes changed: plan it all
        return self._cycle(snap, keys, "change", start)

    def _failed(self, trigger: str, start: float, exc: VirtsyncError) -> CycleReport:
        self.log.error("cycle.error", trigger=trigger, message=str(exc))
        return self._finish(CycleReport(trigger, "error", seconds=self.clock() - start))

    def _cycle(self, snap: Snapshot, keys: Collection[ObjectKey] | None, trigger: str,
               start: float) -> CycleReport:
        if self.metrics is not None:
            self.metrics.tree_valid.set(1 if snap.valid else 0)
        if not snap.valid:
            self._log_invalid(snap)
            return self._finish(CycleReport(trigger, "invalid", seconds=self.clock() - start))
        try:
            report = self._reconcile(snap, keys, trigger, start)
        except VirtsyncError as exc:
            return self._failed(trigger, start, exc)
        return self._finish(report)

    def _finish(self, report: CycleReport) -> CycleReport:
        if self.metrics is not None:
            self.metrics.cycle(report.trigger, report.result, report.seconds)
        if self.on_cycle is not None:
            self.on_cycle(report)
        if report.result not in ("unchanged", "invalid", "error"):
            failed = sum(1 for o in report.outcomes if o.failed)
            self.log.info("cycle.done", trigger=report.trigger, result=report.result,
                          keys=report.keys, changes=report.changes,
                          applied=sum(1 for o in report.outcomes
                                      if not o.failed),
                          failed=failed, refused=len(report.refusals), drift=report.drift,
                          seconds=round(report.seconds, 4))
        return report

    def _log_invalid(self, snap: Snapshot) -> None:
        errors = snap.errors
        self.log.error("tree.invalid", errors=len(errors), files=snap.files,
                       note="nothing planned, applied or pruned until the tree is fixed")
        for f in errors[:MAX_LOGGED_FINDINGS]:
            self.log.error("tree.finding", file=f.file, line=f.line, column=f.column,
                           path=f.path, message=f.message, rule=f.rule)

    def _reconcile(self, snap: Snapshot, keys: Collection[ObjectKey] | None, trigger: str,
                   start: float) -> CycleReport:
        backend = self._ensure_backend(snap)
        if keys is not None:
            # A changed instancetype or preference changes the VMs that use it.
            keys = set(keys) | dependents(keys, snap.by_key)
        desired = snap.desired(keys)
        memo = self._memo(desired) if keys is None else None
        plan, observation = plan_cycle(desired, backend, self.inventory,
                                       prune=self.options.apply.prune, keys=keys, memo=memo,
                                       bodies=self._bodies)
        if memo is not None:
            if self._unchanged is None:
                save_memo(self.state, self.inventory.source, memo)
            self._unchanged = memo.kept
        self._note_statuses(observation, keys)
        drift = self._drift(plan, snap, keys, trigger)
        # A file missing for a moment (an editor saving by rename) must never prune a
        # VM: deletions a partial read implies wait for the next full read (resync).
        allowed = permit(plan, snap.by_key, self.options.apply, self.inventory,
                         defer_deletions=keys is not None and self.options.apply.prune
                         and self.tree.deletions_need_full_read)
        self._log_permit(allowed)
        # Planned but not run (refused, or left by a stop) is not adopted as applied.
        outcomes, self.inventory = apply_changes(self._runner(backend), allowed.runnable,
                                                 desired, snap.by_key, self.inventory,
                                                 planned=plan.changes)
        if outcomes and not self.stopping:
            self._refresh_statuses(backend, {o.key for o in outcomes})
        self.retry = {o.key for o in outcomes if o.failed}
        if not self.stopping:
            self.applied = dict(snap.hashes)
            self._candidates.clear()
            if keys is None:
                self.tree.take_dirty()
                # The big, long-lived heap (every manifest) out of the cyclic GC's way:
                # a full collection over it would stall an incremental cycle.
                gc.freeze()
        result = "stopped" if self.stopping else "ok"
        return CycleReport(trigger, result, -1 if keys is None else len(keys),
                           len(plan.changes), tuple(outcomes), allowed.refusals, drift,
                           self.clock() - start)

    def _memo(self, desired: Desired) -> UnchangedMemo:
        if self._unchanged is None:
            return load_memo(self.state, self.inventory.source, desired)
        return UnchangedMemo(self._unchanged, desired.hashes)

    def _drift(self, plan: Plan, snap: Snapshot, keys: Collection[ObjectKey] | None,
               trigger: str) -> int:
        """Changes to objects whose desired body did not change: drift (logged on resync)."""
        moved = changed_keys(self.applied, snap.hashes) if keys is None else set(keys)
        drift = [c for c in plan.changes if not c.is_delete and c.key not in moved]
        if trigger == "resync" and drift:
            for c in drift:
                self.log.warning("drift.found", c.key, cause=c.cause)
            if self.metrics is not None:
                self.metrics.drift.inc(len(drift))
        return len(drift)

    def _log_permit(self, allowed: Permit) -> None:
        for r in allowed.refusals:
            self.log.warning("object.refused", r.key, needs=r.needs, cause=r.cause)
        for key in allowed.deferred:
            self.log.debug("object.prune-deferred", key, detail="until the next resync")
        for key in allowed.skipped:
            if key not in self._skipped_logged:
                self.log.info("object.skipped", key, detail="no longer in git; prune with --prune")
        if allowed.skipped:
            self._skipped_logged = set(allowed.skipped)
        if allowed.capped:
            n = len(allowed.capped)
            self.log.error("prune.capped", deletions=n, cap=allowed.cap,
                           note=f"nothing pruned; pass --max-prune {n} if this is intended")

    def _runner(self, backend: Backend) -> Run:
        """The execution context: a new backend after a Cluster change, one journal."""
        if self._run is None or self._run.backend is not backend:
            journal = self._run.journal if self._run is not None else new_journal(self.state)
            self._run = Run(self.state, backend, journal, self.options.apply, self._report,
                            lambda: self.stopping)
        return self._run

    def _report(self, o: Outcome) -> None:
        level = "error" if o.failed else "info"
        self.log.log(level, f"object.{o.word}", o.key, detail=o.detail or None)
        if self.metrics is not None:
            self.metrics.outcome(o.word)
        if self.on_outcome is not None:
            self.on_outcome(o)

    def _refresh_statuses(self, backend: Backend, keys: set[ObjectKey]) -> None:
        """Statuses after the actions (the plan's observation predates them)."""
        try:
            self._note_statuses(observe_some(backend, keys), keys)
        except VirtsyncError as exc:
            self.log.warning("status.unknown", message=str(exc))

    def _note_statuses(self, observation: Observation,
                       keys: Collection[ObjectKey] | None) -> None:
        if keys is None:
            self.statuses = {}
        else:
            for k in keys:
                self.statuses.pop(k, None)
        for o in observation.objects:
            self.statuses[o.key] = o.status.printable_status
        if self.metrics is not None:
            self.metrics.set_statuses(self.statuses.values())

    # ------------------------------------------------------------------ backend, agents

    def _ensure_backend(self, snap: Snapshot) -> Backend:
        # The Cluster objects' hashes (snap.clusters: not a pass over every key per cycle)
        cluster = "|".join(sorted(snap.hashes[k] for k in snap.clusters if k in snap.hashes))
        if self.backend is not None and cluster == self._cluster:
            return self.backend
        if self.backend is not None:
            self.log.info("backend.reload", note="the Cluster object changed")
            self._stop_agents()
            self.backend.close()
        self.backend = self.backend_factory(list(snap.by_key.values()))
        if isinstance(self.backend, InventoryKeeper):  # kept in the cluster, not here
            self.inventory = load_inventory(self.state, self.inventory.source, self.backend)
        self._cluster = cluster
        if self.options.agent:
            self._start_agents(self.backend)
        return self.backend

    def _start_agents(self, backend: Backend) -> None:
        """The backend's node agents (libvirt: one lifecycle agent per node, libvirt events
        drive the run strategies). Started before the backend is first used: libvirt
        needs its event loop registered before a connection opens."""
        agents = backend.agents(every_installation=self.options.agent_every_installation)
        for name, agent in agents.items():
            try:
                agent.start()
            except VirtsyncError as exc:
                self.log.error("agent.error", name, message=str(exc))
                continue
            self._agents.append(agent)
            self.log.info("agent.start", name)

    def _stop_agents(self) -> None:
        for agent in self._agents:
            agent.stop()
        self._agents = []


def gather(events: queue.Queue[tuple[str, bool]], first: tuple[str, bool],
           options: WatchOptions, clock: Callable[[], float]) -> set[str]:
    """The paths of one burst of events, returned once every path is whole.

    A file is whole when its latest event is a close after writing, a rename into place
    or a deletion; then only a short coalescing window (`debounce`) waits for the rest of
    an editor's burst. A file written but not yet closed is waited for (a half-written
    file is never read), up to `max_delay` after the first event."""
    latest = {first[0]: first[1]}
    deadline = clock() + options.max_delay
    while True:
        pending = not all(latest.values())
        wait = min(options.max_delay if pending else options.debounce, deadline - clock())
        if wait <= 0:
            return set(latest)
        try:
            path, whole = events.get(timeout=wait)
        except queue.Empty:
            return set(latest)
        if (path, whole) == _STOP:
            events.put(_STOP)
            return set(latest)
        latest[path] = whole
