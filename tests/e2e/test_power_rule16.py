"""Safety rule 16 on libvirt's test driver, through the CLI (`apply`, `stop`, `plan`) and
through `watch`: an update never changes a VM's power state unless its run strategy
demands it, and an operator stop lasts until git changes runStrategy or `virtsync start`.

The table: every run strategy × (label edit, operator stop then edit, clean guest
shutdown then edit, start from outside virtsync then edit) → is the guest running after
the edit was applied. KubeVirt's meaning (kubevirt.io/user-guide/compute/run_strategies):
Always keeps it running (an operator stop holds it off), RerunOnFailure does not rerun
after a clean shutdown, Once never reruns, Manual leaves it as the operator left it,
Halted keeps it stopped even when something outside started it.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
import yaml

from reconciler.backends.libvirt import LibvirtBackend
from reconciler.cli import main
from reconciler.execute.apply import ApplyOptions
from reconciler.watch.logs import JsonLogger
from reconciler.watch.watcher import Watcher, WatchOptions

URI = "test:///default"
STRATEGIES = ("Always", "RerunOnFailure", "Once", "Manual", "Halted")
SCENARIOS = ("label edit", "operator stop, edit", "guest shutdown, edit", "outside start, edit")
# Running after the edit is applied? One row per strategy, one column per scenario.
EXPECTED = {
    "Always": (True, False, True, True),
    "RerunOnFailure": (True, False, False, True),
    "Once": (True, False, False, True),
    "Manual": (True, False, False, True),  # started with `virtsync start` first
    "Halted": (False, False, False, False),
}
CASES = [(s, c, EXPECTED[s][i]) for s in STRATEGIES for i, c in enumerate(SCENARIOS)]


def vm_body(name: str, ns: str, run: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": meta,
            "spec": {"runStrategy": run, "template": {"spec": {
                "terminationGracePeriodSeconds": 1,
                "domain": {"cpu": {"cores": 1}, "memory": {"guest": "64Mi"}, "devices": {}}}}}}


class Tree:
    def __init__(self, tmp: Path, conn: Any) -> None:
        self.root = tmp / "repo"
        self.root.mkdir()
        self.ns = "p" + uuid.uuid4().hex[:8]
        self.conn = conn
        (self.root / "cluster.yaml").write_text(yaml.safe_dump({
            "apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "c"},
            "spec": {"nodes": [{"name": "n1", "uri": URI, "storageDir": str(tmp / "storage"),
                                "imageDir": str(tmp / "images"), "memoryMiB": 16384}]}}))

    def put(self, name: str, run: str, labels: dict[str, str] | None = None) -> Path:
        path = self.root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(vm_body(name, self.ns, run, labels)))
        return path

    def dom(self, name: str) -> Any:
        return self.conn.lookupByName(f"{self.ns}_{name}")

    def running(self, name: str) -> bool:
        return bool(self.dom(name).isActive())

    def cleanup(self) -> None:
        for d in self.conn.listAllDomains():
            if d.name().startswith(f"{self.ns}_"):
                if d.isActive():
                    d.destroy()
                d.undefine()


@pytest.fixture()
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tree]:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    conn = libvirt.open(URI)  # keeps the test driver's state for the whole test
    t = Tree(tmp_path, conn)
    try:
        yield t
    finally:
        t.cleanup()
        conn.close()


def run(*argv: str) -> int:
    return main(list(argv))


def disturb(t: Tree, name: str, scenario: str) -> None:
    """What happens to the VM before git changes one of its labels."""
    dom = t.dom(name)
    if scenario == "operator stop, edit":
        assert run("stop", f"{t.ns}/{name}", "--path", str(t.root)) == 0
    elif scenario == "guest shutdown, edit" and dom.isActive():
        dom.shutdown()  # the guest powers itself off (shut-off reason: shutdown)
    elif scenario == "outside start, edit":
        if dom.isActive():
            dom.shutdown()
        dom.create()  # `virsh start`
    assert t.dom(name).state()[0] in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_SHUTOFF)


def bring_up(t: Tree, name: str, strategy: str, apply: Callable[[], None]) -> None:
    t.put(name, strategy)
    apply()
    assert t.running(name) is (strategy in ("Always", "RerunOnFailure", "Once"))
    if strategy == "Manual":  # Manual: created stopped; the operator starts it
        assert run("start", f"{t.ns}/{name}", "--path", str(t.root)) == 0
        assert t.running(name)


@pytest.mark.parametrize(("strategy", "scenario", "running"), CASES,
                         ids=[f"{s}-{c}" for s, c, _ in CASES])
def test_apply_changes_power_only_as_the_run_strategy_demands(
        tree: Tree, strategy: str, scenario: str, running: bool,
        capsys: pytest.CaptureFixture[str]) -> None:
    def apply() -> None:
        assert run("apply", str(tree.root)) == 0, capsys.readouterr().err

    bring_up(tree, "vm", strategy, apply)
    disturb(tree, "vm", scenario)
    tree.put("vm", strategy, labels={"edited": "yes"})
    apply()
    assert tree.running("vm") is running
    capsys.readouterr()
    # Rule 12: converged; the power state is not "drift" the next plan would undo.
    assert run("plan", str(tree.root), "--detailed-exitcode") == 0, capsys.readouterr().out


@pytest.mark.parametrize(("strategy", "scenario", "running"), CASES,
                         ids=[f"{s}-{c}" for s, c, _ in CASES])
def test_watch_changes_power_only_as_the_run_strategy_demands(
        tree: Tree, strategy: str, scenario: str, running: bool, tmp_path: Path) -> None:
    # The plan's part alone (the lifecycle agent has its own tests): no agent here.
    watcher = Watcher(WatchOptions(path=str(tree.root), apply=ApplyOptions(), agent=False),
                      state=tmp_path / "state",
                      backend_factory=lambda ms: LibvirtBackend.from_manifests(
                          ms, state=tmp_path / "state"),
                      log=JsonLogger(io.StringIO(), level="debug"))
    try:
        def apply() -> None:
            report = watcher.resync() if watcher.backend is not None else watcher.startup()
            assert report.result == "ok", report

        bring_up(tree, "vm", strategy, apply)
        disturb(tree, "vm", scenario)
        path = tree.put("vm", strategy, labels={"edited": "yes"})
        report = watcher.on_change({str(path)})
        assert report.result == "ok"
        assert tree.running("vm") is running
        # Drift healing (a full resync) keeps it so, too.
        assert watcher.resync().changes == 0
        assert tree.running("vm") is running
    finally:
        watcher.close()


def test_git_changing_run_strategy_ends_an_operator_stop(
        tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    tree.put("a", "Always")
    tree.put("b", "Always")
    assert run("apply", str(tree.root)) == 0
    for name in ("a", "b"):
        assert run("stop", f"{tree.ns}/{name}", "--path", str(tree.root)) == 0
    tree.put("a", "RerunOnFailure")  # git changes a's run strategy: it runs again
    tree.put("b", "Always", labels={"x": "y"})  # any other edit: b stays stopped
    capsys.readouterr()
    assert run("plan", str(tree.root), "-o", "json") == 1
    changes = {c["name"]: c for c in json.loads(capsys.readouterr().out)["changes"]}
    assert "start" in changes["a"]["actions"] and "start" not in changes["b"]["actions"]
    assert run("apply", str(tree.root)) == 0
    assert tree.running("a") and not tree.running("b")
    # `virtsync start` ends it too; then the next label edit keeps it running.
    assert run("start", f"{tree.ns}/b", "--path", str(tree.root)) == 0
    tree.put("b", "Always", labels={"x": "z"})
    assert run("apply", str(tree.root)) == 0
    assert tree.running("b")


def test_halted_vm_started_outside_is_planned_to_stop(
        tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    tree.put("h", "Halted")
    assert run("apply", str(tree.root)) == 0
    tree.dom("h").create()  # `virsh start`
    capsys.readouterr()
    assert run("plan", str(tree.root), "-o", "json") == 1
    (change,) = json.loads(capsys.readouterr().out)["changes"]
    assert change["actions"] == ["stop"] and "Halted" in change["cause"]
    assert run("status", str(tree.root), "-o", "json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["printableStatus"] == "Running" and row["drift"] is True
    assert run("apply", str(tree.root)) == 0
    assert not tree.running("h")
    assert run("plan", str(tree.root), "--detailed-exitcode") == 0
    # `virtsync start` does not start a Halted VM: the run strategy would stop it again.
    assert run("start", f"{tree.ns}/h", "--path", str(tree.root)) == 2
    assert "runStrategy is Halted" in capsys.readouterr().err
    assert not tree.running("h")


def test_drift_healing_does_not_start_a_stopped_manual_vm(tree: Tree, tmp_path: Path) -> None:
    """The resync that restores git over an outside edit redefines the VM and leaves a
    stopped Manual (and Once) VM stopped."""
    tree.put("man", "Manual")
    tree.put("once", "Once")
    watcher = Watcher(WatchOptions(path=str(tree.root), apply=ApplyOptions(), agent=False),
                      state=tmp_path / "state",
                      backend_factory=lambda ms: LibvirtBackend.from_manifests(
                          ms, state=tmp_path / "state"),
                      log=JsonLogger(io.StringIO(), level="debug"))
    try:
        assert watcher.startup().result == "ok"
        tree.dom("once").shutdown()  # Once: ran, completed
        config = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        for name in ("man", "once"):  # `virsh setmaxmem --config` behind virtsync's back
            tree.dom(name).setMemoryFlags(32 * 1024, config | libvirt.VIR_DOMAIN_MEM_MAXIMUM)
        report = watcher.resync()
        assert report.drift == 2
        assert sorted((o.key.name, o.word) for o in report.outcomes) == [
            ("man", "configured"), ("once", "configured")]
        assert not tree.running("man") and not tree.running("once")
        assert watcher.resync().changes == 0
    finally:
        watcher.close()
