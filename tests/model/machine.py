"""A Hypothesis state machine over virtsync's trust model (issue 8): random git edits,
applies with and without the opt-in flags, operator start/stop, power events behind
virtsync's back and (on the real lane) `kill -9` mid-apply, with the invariants checked
after every step through the CLI and straight from libvirt and the storage directory.

Invariants (safety rule in brackets):
- no claim disk file is lost, unless its owning VM was pruned with its Delete policy (or
  the disk removed from its spec) under --allow-data-loss and nothing else references
  it; no claim file is ever recreated (rules 4, 7, 13);
- each surviving VM keeps its UUID, serial and MACs; a pinned VM keeps them across a
  rename; every VM in git that was applied has a domain (rule 17);
- every domain carries the owner marker (rule 3);
- power state is what the run strategy demands: Always runs unless an operator stopped
  it, Halted is off, Manual/RerunOnFailure follow the last operator verb or event; an
  update never changes it (rule 16);
- a refused apply changes nothing; after a successful apply the plan is empty (rule 12);
  after `virtsync pin` a converged tree still plans nothing (rule 17).

Every check is enforced. The bugs this machine found when it was written (the issue-8
ones, and the claim order it found itself) are named in `ISSUES`, so a regression
fails with the promise it breaks.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from node.lifecycle.agent import LifecycleAgent
from node.lifecycle.decide import StopKind
from reconciler.backends.libvirt import LibvirtBackend
from reconciler.planning.reconcile import load_desired

from .world import RUN_STRATEGIES, Lane, LiveVm, Ran, VmModel, World

NAMES = ("a", "b", "c", "d", "e")
# After an edit: nothing, apply, apply with every permission and --prune, or (real lane;
# elsewhere a plain apply) an apply killed at its first side effect, then rerun.
THEN = st.sampled_from(("", "", "apply", "apply-all", "kill"))
MAX_VMS = 3

# Promises the machine once caught broken (issue 8, and one it found itself): a
# regression fails the run naming the promise.
ISSUES = {
    "SHARED_CLAIM": "pruning a Delete-policy VM deleted a claim another VM mounts; the "
                    "survivor's missing disk was not reported by plan",
    "POWER_ON_UPDATE": "an update (label, cores, disks, pins) started a stopped VM that is "
                       "not Halted (Manual, RerunOnFailure, operator-stopped Always)",
    "HALTED_STARTED_OUTSIDE": "a Halted VM started behind virtsync's back kept running "
                              "and plan said 'No changes'",
    "PIN_PLAN": "`virtsync pin` on a converged tree made plan show an identity change",
    "RENAME": "renaming a pinned VM failed ('pinned MAC already used') and left it "
              "without a domain",
    "CLAIM_ORDER": "a VM that mounts (persistentVolumeClaim) a claim another VM declares "
                   "in the same apply was created first and failed: 'claim(s) ... not found'",
}


@dataclass
class Stats:
    """What a whole run did, for the report: sequences, steps, and every violation of
    a held-back check (by switch name, with one example message)."""

    sequences: int = 0
    steps: int = 0
    rules: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        lines = [f"model: {self.sequences} sequences, {self.steps} steps",
                 "rules: " + ", ".join(f"{k}={v}" for k, v in sorted(self.rules.items()))]
        return "\n".join(lines)


STATS = Stats()


@dataclass(frozen=True)
class Ident:
    uuid: str
    serial: str
    macs: tuple[str, ...]

    @classmethod
    def of(cls, live: LiveVm) -> Ident:
        return cls(live.uuid, live.serial, live.macs)


class TrustModel(RuleBasedStateMachine):
    """Subclassed per lane (`lane`, `conn`) by the test modules."""

    lane: Lane
    conn: Any
    _seq = 0

    def __init__(self) -> None:
        super().__init__()
        TrustModel._seq += 1
        STATS.sequences += 1
        suffix = os.environ.get("VIRTSYNC_REAL_SUFFIX", "")
        self.tmp = Path(tempfile.mkdtemp(prefix="virtsync-model-", dir="/var/tmp"))
        self.tmp.chmod(0o755)
        self.world = World(self.tmp, f"model{suffix}x{TrustModel._seq}", self.lane, self.conn)
        self.desired: dict[str, VmModel] = {}  # git
        self.applied: dict[str, VmModel] = {}  # what the last successful apply made live
        self.renames: dict[str, str] = {}  # new name → old name, in git, not yet applied
        self.ident: dict[str, Ident] = {}
        self.claims: dict[str, int] = {}  # claim → inode, every claim file seen
        self.may_delete: set[str] = set()
        self.lost_claims: set[str] = set()  # deleted though referenced (a known bug)
        self.want: dict[str, bool | None] = {}
        self.op_stopped: set[str] = set()
        self.updated: set[str] = set()  # changed in git and applied by the last apply
        self.halted_outside: set[str] = set()  # Halted VMs started behind our back
        self.halted_checked: set[str] = set()  # ... that the last apply should have stopped
        self.converged = False  # last apply succeeded and git has not changed since
        self.lost_track = False  # after an unexplained failure: power/plan checks off
        self.dv_counter = 0
        self.rename_failed = False
        self.started = time.monotonic()

    def teardown(self) -> None:
        self.world.remove_domains()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if os.environ.get("VIRTSYNC_MODEL_PROGRESS"):  # long runs by hand: a line per sequence
            print(f"{time.monotonic() - self.started:.1f}s {STATS.summary()}", flush=True)

    # ------------------------------------------------------------------ helpers

    def _step(self, name: str) -> None:
        STATS.steps += 1
        STATS.rules[name] += 1

    def violated(self, issue: str, message: str) -> None:
        """A promise the machine once caught broken is broken again: fail the run."""
        raise AssertionError(f"{issue} ({ISSUES[issue]}): {message}")

    def _edit(self, vm: VmModel) -> None:
        self.desired[vm.name] = vm
        self.world.write(vm)
        self.converged = False

    def _flags(self) -> list[str]:
        # Guests that never answer ACPI are stopped by force after the (short) grace.
        return [] if self.lane.acpi else ["--force-stop"]

    def _plan(self, prune: bool = False) -> Ran:
        return self.world.cli("plan", str(self.world.repo), "--color", "never",
                              *(["--prune"] if prune else []))

    def _sharers(self, claim: str, *, but: str) -> set[str]:
        """VMs (in git or live) other than `but` that reference `claim`."""
        vms = {**self.applied, **self.desired}
        return {n for n, vm in vms.items()
                if n != but and claim in vm.referenced_claims()}

    def _in_sharing(self, name: str) -> bool:
        vm = self.applied.get(name) or self.desired.get(name)
        assert vm is not None
        return bool(vm.shares) or bool(self._sharers(vm.dv, but=name))

    # ------------------------------------------------------------------ git edits

    @precondition(lambda self: len(self.desired) < MAX_VMS)
    @rule(then=THEN, data=st.data(), strategy=st.sampled_from(RUN_STRATEGIES),
          delete=st.booleans(), share=st.booleans())
    def add_vm(self, data: st.DataObject, then: str, strategy: str, delete: bool,
               share: bool) -> None:
        """A new VM; sometimes it also mounts another VM's claim (and is then Halted)."""
        free = [n for n in NAMES if n not in self.desired and n not in self.applied]
        if not free:
            return
        name = data.draw(st.sampled_from(free), label="name")
        owner = data.draw(st.sampled_from(sorted(self.desired)), label="owner") \
            if share and self.desired else None
        self._step("add")
        self.dv_counter += 1
        vm = VmModel(name, f"{name}{self.dv_counter}-data", strategy, delete_policy=delete)
        if owner is not None:
            vm = replace(vm, shares=self.desired[owner].dv, strategy="Halted")
        self._edit(vm)
        self._then(then)

    def _removable(self) -> list[str]:
        # Not a VM whose claim another VM in git mounts before the claim exists: that
        # leaves a reference to a claim nobody declares (a plain error, not this model's).
        have = self.world.claim_files()
        return sorted(n for n, vm in self.desired.items()
                      if vm.dv in have or not self._sharers(vm.dv, but=n))

    @precondition(lambda self: bool(self._removable()))
    @rule(then=THEN, data=st.data())
    def remove_vm(self, data: st.DataObject, then: str) -> None:
        name = data.draw(st.sampled_from(self._removable()), label="name")
        self._step("remove")
        del self.desired[name]
        self.renames.pop(name, None)
        self.world.remove(name)
        self.converged = False
        self._then(then)

    @precondition(lambda self: any(
        vm.pins and n in self.applied and self.applied[n].pins == vm.pins
        for n, vm in self.desired.items()))
    @rule(then=THEN, data=st.data())
    def rename_pinned_vm(self, data: st.DataObject, then: str) -> None:
        olds = [n for n, vm in sorted(self.desired.items())
                if vm.pins and n in self.applied and self.applied[n].pins == vm.pins]
        free = [n for n in NAMES if n not in self.desired and n not in self.applied]
        if not free:
            return
        old = data.draw(st.sampled_from(olds), label="old")
        new = data.draw(st.sampled_from(free), label="new")
        self._step("rename")
        vm = replace(self.desired.pop(old), name=new)
        self.world.remove(old)
        self.renames[new] = self.renames.pop(old, old)
        self._edit(vm)
        self._then(then)

    @precondition(lambda self: bool(self.desired))
    @rule(then=THEN, data=st.data(), cores=st.integers(1, 2))
    def set_cores(self, data: st.DataObject, then: str, cores: int) -> None:
        name = data.draw(st.sampled_from(sorted(self.desired)), label="name")
        self._step("cores")
        self._edit(replace(self.desired[name], cores=cores))
        self._then(then)

    @precondition(lambda self: bool(self.desired))
    @rule(then=THEN, data=st.data(), label=st.sampled_from(("a", "b", "c")))
    def set_label(self, data: st.DataObject, then: str, label: str) -> None:
        name = data.draw(st.sampled_from(sorted(self.desired)), label="name")
        self._step("label")
        self._edit(replace(self.desired[name], label=label))
        self._then(then)

    @precondition(lambda self: any(not vm.shares for vm in self.desired.values()))
    @rule(then=THEN, data=st.data(), strategy=st.sampled_from(RUN_STRATEGIES))
    def set_run_strategy(self, data: st.DataObject, then: str, strategy: str) -> None:
        # A VM that mounts another's claim stays Halted: two running domains on one disk
        # are refused by design (rule 6), which is not what this machine explores.
        names = sorted(n for n, vm in self.desired.items() if not vm.shares)
        name = data.draw(st.sampled_from(names), label="name")
        self._step("strategy")
        self._edit(replace(self.desired[name], strategy=strategy))
        self._then(then)

    @precondition(lambda self: bool(self.desired))
    @rule(then=THEN, data=st.data())
    def toggle_extra_disk(self, data: st.DataObject, then: str) -> None:
        name = data.draw(st.sampled_from(sorted(self.desired)), label="name")
        self._step("disk")
        vm = self.desired[name]
        self._edit(replace(vm, extra=not vm.extra))
        self._then(then)

    @precondition(lambda self: len(self.desired) >= 2)
    @rule(then=THEN, data=st.data())
    def share_claim(self, data: st.DataObject, then: str) -> None:
        """One VM mounts another's claim (persistentVolumeClaim.claimName); it is Halted."""
        name = data.draw(st.sampled_from(sorted(self.desired)), label="name")
        other = data.draw(st.sampled_from(sorted(set(self.desired) - {name})), label="owner")
        self._step("share")
        self._edit(replace(self.desired[name], shares=self.desired[other].dv,
                           strategy="Halted"))
        self._then(then)

    @precondition(lambda self: any(vm.shares for vm in self.desired.values()))
    @rule(then=THEN, data=st.data())
    def unshare_claim(self, data: st.DataObject, then: str) -> None:
        name = data.draw(st.sampled_from(sorted(n for n, vm in self.desired.items()
                                                if vm.shares)), label="name")
        self._step("unshare")
        self._edit(replace(self.desired[name], shares=None))
        self._then(then)

    @precondition(lambda self: bool(self.applied))
    @rule()
    def pin(self) -> None:
        self._step("pin")
        check = self._plan_should_be_empty()
        ran = self.world.cli("pin", str(self.world.repo))
        if ran.code == 1 and self.renames:
            # A rename in git not applied yet: its pins may contradict a record the node
            # kept under the new name (a VM of that name pruned earlier). pin says so.
            assert "nothing written" in ran.err, ran.err
            return
        assert ran.code == 0, ran.err
        for name, vm in list(self.desired.items()):
            pins = self.world.read_pins(name)
            if pins != vm.pins:
                self.desired[name] = replace(vm, pins=pins)
                self.converged = False
        if check and not self.lost_track:
            # Committing pins equal to the live identity is the documented workflow.
            plan = self._plan()
            if plan.code != 0:
                self.violated("PIN_PLAN", f"plan after pin exits {plan.code}: "
                                          f"{_tail(plan.out)}")
            else:
                self.converged = True

    # ------------------------------------------------------------------ apply

    def _then(self, then: str) -> None:
        """An edit is often applied at once (as CI does on merge): reach deeper states."""
        if then == "apply":
            self.apply(allow_restart=False, allow_data_loss=False, prune=False)
        elif then == "apply-all":
            self.apply(allow_restart=True, allow_data_loss=True, prune=True)
        elif then == "kill":
            if self.lane.can_kill:
                self.kill_apply_then_rerun(fault="action:1", allow_restart=True, prune=False)
            else:
                self.apply(allow_restart=True, allow_data_loss=False, prune=False)

    @rule(allow_restart=st.booleans(), allow_data_loss=st.booleans(), prune=st.booleans())
    def apply(self, allow_restart: bool, allow_data_loss: bool, prune: bool) -> None:
        self._step("apply")
        flags = [*(["--allow-restart"] if allow_restart else []),
                 *(["--allow-data-loss"] if allow_data_loss else []),
                 *(["--prune"] if prune else []), *self._flags()]
        before = self._snapshot()
        ran = self.world.cli("apply", str(self.world.repo), "--auto-approve", *flags)
        if (ran.code == 1 and "not found on node" in ran.out + ran.err
                and not self._lost_claims_in_use()):
            self.violated("CLAIM_ORDER", _tail(ran.out + ran.err))
            before = self._snapshot()
            ran = self.world.cli("apply", str(self.world.repo), "--auto-approve", *flags)
        self._after_apply(ran, before, allow_data_loss=allow_data_loss, prune=prune)

    @precondition(lambda self: self.lane.can_kill and bool(self.desired))
    @rule(fault=st.sampled_from(("action:1", "intent:2", "action:2")),
          allow_restart=st.booleans(), prune=st.booleans())
    def kill_apply_then_rerun(self, fault: str, allow_restart: bool, prune: bool) -> None:
        """`kill -9` of an apply at a journalled step, then the same apply again: the
        rerun converges (rule 7); the killed run loses no disk and no identity."""
        self._step("kill")
        flags = [*(["--allow-restart"] if allow_restart else []),
                 *(["--prune"] if prune else []), *self._flags()]
        before = self._snapshot()
        killed = self.world.cli_killed(fault, "apply", str(self.world.repo),
                                       "--auto-approve", *flags)
        if killed.code != -signal.SIGKILL:  # refused, or fewer steps than the fault's number
            self._after_apply(killed, before, allow_data_loss=False, prune=prune)
            return
        STATS.rules["killed"] += 1
        self.check_disks()
        self.check_identity_kept()
        self.check_owner_marker()
        ran = self.world.cli("apply", str(self.world.repo), "--auto-approve", *flags)
        if ran.code != 0 and not (self.renames or self.rename_failed):
            raise AssertionError(f"the rerun after kill -9 did not converge: {_tail(ran.err)}")
        self._after_apply(ran, self._snapshot(), allow_data_loss=False, prune=prune)

    def _snapshot(self) -> tuple[dict[str, str], dict[str, int]]:
        import libvirt

        xml = {n: d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) + str(d.isActive())
               for n, d in self.world.domains().items()}
        return xml, self.world.claim_files()

    def _after_apply(self, ran: Ran, before: tuple[dict[str, str], dict[str, int]], *,
                     allow_data_loss: bool, prune: bool) -> None:
        refused = ran.code == 1 and "apply refused" in ran.err
        # Over the prune cap: exit 2 today, 1 once issue 8's "refusals exit 1" is merged.
        capped = ran.code in (1, 2) and "refusing to prune" in ran.err
        if refused or capped:
            # A refusal changes nothing (rules 4 and 12's "no writes").
            assert self._snapshot() == before, f"a refused apply changed live state: {ran.err}"
            return
        if ran.code != 0:
            message = f"apply exited {ran.code}: {_tail(ran.out + ran.err)}"
            if self.renames or self.rename_failed:
                # Once a rename has failed, every later apply fails the same way.
                self.rename_failed = True
                self.violated("RENAME", message)
            elif self._lost_claims_in_use():
                self.violated("SHARED_CLAIM", message)
            else:
                raise AssertionError(message)
            self.lost_track = True
        self._record_applied(allow_data_loss=allow_data_loss, prune=prune)
        if ran.code == 0:
            self.converged = True
            if self._plan_should_be_empty():
                self.check_power()
                plan = self._plan(prune)
                if plan.code != 0:
                    self._plan_not_empty(plan)

    def _lost_claims_in_use(self) -> set[str]:
        """Claims deleted under a VM that mounts them (SHARED_CLAIM)."""
        return {c for vm in self.desired.values() for c in vm.referenced_claims()
                if c in self.lost_claims}

    def _plan_should_be_empty(self) -> bool:
        # Without --prune, VMs that left git stay and plan lists them (by design).
        return (self.converged and not self.lost_track
                and set(self.applied) <= set(self.desired))

    def _plan_not_empty(self, plan: Ran) -> None:
        message = f"plan after a successful apply exits {plan.code}: {_tail(plan.out)}"
        if self._missing_disks():
            self.violated("SHARED_CLAIM", message)
        else:
            raise AssertionError(message)  # rule 12

    def _record_applied(self, *, allow_data_loss: bool, prune: bool) -> None:
        """The model after an apply that ran: git is live now; renames carry identity."""
        self.updated = set()
        for new, old in self.renames.items():
            if old in self.applied:
                self.applied[new] = replace(self.applied.pop(old), name=new)
                if old in self.ident:
                    self.ident[new] = self.ident.pop(old)
                self.want[new] = self.want.pop(old, None)
                if old in self.op_stopped:
                    self.op_stopped.discard(old)
                    self.op_stopped.add(new)
        self.renames = {}
        orphans = {n: vm for n, vm in self.applied.items() if n not in self.desired}
        for name, vm in self.desired.items():
            was = self.applied.get(name)
            if was is None:
                self.want[name] = vm.strategy in ("Always", "RerunOnFailure")
                continue
            if was != vm:
                self.updated.add(name)
            if was.strategy != vm.strategy:
                self.op_stopped.discard(name)
                self.want[name] = {"Always": True, "Halted": False}.get(
                    vm.strategy, None if vm.strategy == "RerunOnFailure" else self.want[name])
            if was.extra and not vm.extra and allow_data_loss:
                self.may_delete.add(f"{vm.dv}-x")
        # A Halted VM found running is stopped by the apply (KubeVirt's semantics).
        self.halted_checked = {n for n in self.halted_outside
                               if n in self.desired and self.desired[n].strategy == "Halted"}
        for name in self.halted_checked:
            self.want[name] = False
        self.halted_outside = set()
        kept = {} if prune else orphans
        self.applied = {**copy.deepcopy(self.desired), **kept}
        if prune:
            for name, vm in orphans.items():
                self.ident.pop(name, None)
                self.want.pop(name, None)
                self.op_stopped.discard(name)
                if vm.delete_policy and allow_data_loss:
                    self.may_delete |= {c for c in vm.owned_claims()
                                        if not self._sharers(c, but=name)}

    # ------------------------------------------------------------------ operator

    def _live_names(self, active: bool) -> list[str]:
        live = self.world.live()
        return sorted(n for n, vm in self.applied.items()
                      if n in live and live[n].active == active
                      and vm.strategy != "Halted" and not self._in_sharing(n))

    @precondition(lambda self: bool(self._live_names(active=True)))
    @rule(data=st.data())
    def operator_stop(self, data: st.DataObject) -> None:
        names = self._live_names(active=True)
        name = data.draw(st.sampled_from(names), label="name")
        self._step("op_stop")
        ran = self.world.cli("stop", f"{self.world.namespace}/{name}", "--path",
                             str(self.world.repo), *([] if self.lane.acpi else ["--force"]))
        assert ran.code == 0, ran.err
        self.want[name] = False
        self.op_stopped.add(name)

    @precondition(lambda self: bool(self._live_names(active=False)))
    @rule(data=st.data())
    def operator_start(self, data: st.DataObject) -> None:
        names = self._live_names(active=False)
        name = data.draw(st.sampled_from(names), label="name")
        self._step("op_start")
        ran = self.world.cli("start", f"{self.world.namespace}/{name}", "--path",
                             str(self.world.repo))
        assert ran.code == 0, ran.err
        self.want[name] = True
        self.op_stopped.discard(name)

    # ------------------------------------------------------------------ behind our back

    def _running(self) -> list[str]:
        live = self.world.live()
        return sorted(n for n in self.applied if n in live and live[n].active)

    def _startable_outside(self) -> list[str]:
        live = self.world.live()
        return sorted(n for n, vm in self.applied.items()
                      if n in live and not live[n].active
                      and vm.strategy in ("Manual", "Halted") and not self._in_sharing(n))

    @precondition(lambda self: bool(self._running()))
    @rule(data=st.data(), shutdown=st.booleans())
    def external_stop(self, data: st.DataObject, shutdown: bool) -> None:
        """The guest powers off (ACPI/poweroff) or someone destroys the domain; the
        lifecycle agent sees the STOPPED event and applies the run strategy."""
        names = self._running()
        name = data.draw(st.sampled_from(names), label="name")
        shutdown = shutdown and self.lane.acpi
        self._step("ext_shutdown" if shutdown else "ext_destroy")
        dom = self.world.domains()[name]
        if shutdown:
            dom.shutdown()
        else:
            dom.destroy()
        self._agent_pass(dom.UUIDString(),
                         StopKind.GUEST_SHUTDOWN if shutdown else StopKind.DESTROYED)
        vm = self.applied[name]
        self.want[name] = vm.strategy == "Always" and name not in self.op_stopped
        self.halted_outside.discard(name)

    @precondition(lambda self: bool(self._startable_outside()))
    @rule(data=st.data())
    def external_start(self, data: st.DataObject) -> None:
        names = self._startable_outside()
        name = data.draw(st.sampled_from(names), label="name")
        self._step("ext_start")
        self.world.domains()[name].create()
        if self.applied[name].strategy == "Manual":
            self.want[name] = True
            return
        # KubeVirt stops a Halted VM that runs; virtsync must at least report the drift.
        self.want[name] = None
        self.halted_outside.add(name)
        if self._plan_should_be_empty():
            plan = self._plan()
            if plan.code == 0:
                self.violated("HALTED_STARTED_OUTSIDE",
                              f"{name} is Halted and runs, plan exits 0")
        self.converged = False

    def _agent_pass(self, uuid: str, kind: StopKind) -> None:
        """What the lifecycle agent does on the STOPPED event (its decision, then the
        start when due), run here synchronously instead of from libvirt's event loop."""
        backend = LibvirtBackend.from_manifests(load_desired([str(self.world.repo)]).manifests)
        try:
            agent = LifecycleAgent(backend.hosts["n1"])
            decision = agent.handle_stop(uuid, kind)
            if decision is not None and decision.start:
                agent.start_if_still_wanted(uuid)
        finally:
            backend.close()

    # ------------------------------------------------------------------ invariants

    @invariant()
    def check_owner_marker(self) -> None:
        for name, vm in self.world.live().items():
            assert vm.owner_marked, f"domain {vm.domain} has no owner marker (rule 3)"
            assert name in self.applied or name in self.desired or self.lost_track, \
                f"domain {vm.domain} is not in the model"

    def check_identity_kept(self) -> None:
        """Mid-apply (after a kill): whatever has a domain kept its identity."""
        live = self.world.live()
        for name, was in self.ident.items():
            if name in live:
                assert Ident.of(live[name]) == was, f"{name}: identity changed (rule 17)"

    @invariant()
    def check_identity(self) -> None:
        live = self.world.live()
        for name in self.applied:
            if name not in live:
                message = f"{name} was applied but has no domain"
                if self.lost_track:
                    self.violated("RENAME", message)
                    continue
                raise AssertionError(message)
            now = Ident.of(live[name])
            was = self.ident.setdefault(name, now)
            assert now == was, f"{name}: identity changed {was} → {now} (rule 17)"

    @invariant()
    def check_disks(self) -> None:
        now = self.world.claim_files()
        for claim, inode in list(self.claims.items()):
            if claim not in now:
                if claim in self.may_delete:
                    del self.claims[claim]
                    self.may_delete.discard(claim)
                    continue
                owners = [n for n, vm in {**self.applied, **self.desired}.items()
                          if claim in vm.referenced_claims()]
                message = f"claim {claim} deleted while referenced by {owners} (rule 13)"
                if owners:
                    self.violated("SHARED_CLAIM", message)
                    del self.claims[claim]
                    self.lost_claims.add(claim)
                    continue
                raise AssertionError(f"claim {claim} lost (rules 4, 13)")
            assert now[claim] == inode, f"claim {claim} was recreated (rule 7)"
        for claim, inode in now.items():
            self.claims.setdefault(claim, inode)
            self.may_delete.discard(claim)

    @invariant()
    def check_power(self) -> None:
        """Run strategy and operator verbs decide power, and nothing else (rule 16)."""
        if self.lost_track:
            return
        live = self.world.live()
        for name, vm in self.applied.items():
            want = self.want.get(name)
            if name not in live or want is None or live[name].active == want:
                continue
            message = (f"{name} ({vm.strategy}{', operator-stopped' if name in self.op_stopped else ''})"
                       f" is {'running' if live[name].active else 'off'}, wanted "
                       f"{'running' if want else 'off'}")
            if name in self.halted_checked:
                self.violated("HALTED_STARTED_OUTSIDE", message)
            elif name in self.updated and live[name].active:
                self.violated("POWER_ON_UPDATE", message)
            else:
                raise AssertionError(message)
            # Follow what happened, so one known bug does not cascade into others.
            self.want[name] = live[name].active
            self.op_stopped.discard(name)

    def _missing_disks(self) -> list[str]:
        return sorted(path for vm in self.world.live().values() for path in vm.disks
                      if not Path(path).exists())

    @invariant()
    def check_missing_disk_reported(self) -> None:
        missing = self._missing_disks()
        if missing and not self.lost_track:
            plan = self._plan()
            if plan.code == 0:
                self.violated("SHARED_CLAIM", f"disk files {missing} are missing and plan "
                                              "says No changes")


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])
