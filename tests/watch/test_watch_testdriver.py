"""The watch loop in-process on libvirt's test driver: incremental cycles touch only what
changed, resyncs on an unchanged tree write nothing, drift is healed, an invalid tree
applies nothing, refusals are per object, stopping finishes the current action."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
import yaml
from lxml import etree
from parse_count import count_parses, parsed_more_than_once
from watch_helpers import Rig, make_rig, vm_body, wait_for

from reconciler.backends.libvirt import LibvirtBackend
from reconciler.core.model import ObjectKey


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    r = make_rig(tmp_path, vms=3)
    yield r
    r.cleanup()


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in root.rglob("*") if p.is_file()}


def test_startup_creates_everything_then_a_saved_file_updates_only_its_vm(rig: Rig) -> None:
    w = rig.make_watcher()
    report = w.startup()
    assert report.result == "ok"
    assert sorted(rig.domains()) == [f"{rig.ns}_vm{i}" for i in range(3)]
    before = rig.domains()

    rig.write_vm("vm1", labels={"tier": "web"})
    rig.calls.clear()
    report = w.on_change({str(rig.tree / "vm1.yaml")})

    assert report.result == "ok" and report.keys == 1
    assert [(o.key.name, o.word) for o in report.outcomes] == [("vm1", "configured")]
    after = rig.domains()
    assert after[f"{rig.ns}_vm1"] != before[f"{rig.ns}_vm1"]
    assert "tier" in after[f"{rig.ns}_vm1"]
    for other in ("vm0", "vm2"):
        assert after[f"{rig.ns}_{other}"] == before[f"{rig.ns}_{other}"]
    assert "defineXML" in rig.calls


def test_comment_only_edit_plans_nothing_and_writes_nothing(rig: Rig) -> None:
    w = rig.make_watcher()
    w.startup()
    path = rig.tree / "vm2.yaml"
    path.write_text("# a comment\n" + path.read_text())
    rig.calls.clear()
    report = w.on_change({str(path)})
    assert report.result == "unchanged"
    assert rig.calls == []


def test_1000_resyncs_of_an_unchanged_tree_make_no_libvirt_and_no_state_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    rig = make_rig(tmp_path, vms=10, run="Always")
    try:
        w = rig.make_watcher()
        assert w.startup().result == "ok"
        # The counters see writes: the first sync made plenty.
        assert rig.calls.count("defineXML") == 10 and "create" in rig.calls
        events: list[tuple[Any, ...]] = []
        ids = [rig.holder.domainEventRegisterAny(None, event, lambda *a: events.append(a), None)
               for event in (libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                             libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE)]
        rig.calls.clear()
        xml_before = rig.domains()
        state_before = _files(rig.state)
        storage_before = _files(tmp_path / "storage")

        reports = [w.resync() for _ in range(1000)]

        assert {r.result for r in reports} == {"ok"}
        assert sum(r.changes for r in reports) == 0
        assert rig.calls == []
        time.sleep(0.3)  # let the event loop deliver anything pending
        assert events == []
        assert rig.domains() == xml_before
        assert _files(rig.state) == state_before
        assert _files(tmp_path / "storage") == storage_before
        for i in ids:
            rig.holder.domainEventDeregisterAny(i)

        # ...and the same counters do see a real change.
        rig.write_vm("vm3", run="Always", cores=1, labels={"x": "y"})
        assert w.resync().changes == 1
        assert "defineXML" in rig.calls
    finally:
        rig.cleanup()


def test_invalid_tree_applies_nothing_until_fixed(rig: Rig) -> None:
    w = rig.make_watcher()
    w.startup()
    before = rig.domains()
    rig.write_vm("vm0", labels={"a": "b"})  # a valid change...
    rig.write("broken.yaml", "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: [\n")
    rig.calls.clear()

    report = w.on_change({str(rig.tree / "vm0.yaml"), str(rig.tree / "broken.yaml")})
    assert report.result == "invalid"
    assert rig.calls == [] and rig.domains() == before  # ...is not applied either
    assert rig.events("tree.finding")[0]["details"]["file"].endswith("broken.yaml")
    assert w.resync().result == "invalid"
    assert rig.calls == []

    (rig.tree / "broken.yaml").unlink()
    report = w.on_change({str(rig.tree / "broken.yaml")})
    assert report.result == "ok"
    assert [(o.key.name, o.word) for o in report.outcomes] == [("vm0", "configured")]


def test_cross_file_duplicate_blocks_the_tree(rig: Rig) -> None:
    w = rig.make_watcher()
    w.startup()
    rig.write("copy.yaml", (rig.tree / "vm1.yaml").read_text())
    report = w.on_change({str(rig.tree / "copy.yaml")})
    assert report.result == "invalid"
    assert any("defined twice" in f["details"]["message"] for f in rig.events("tree.finding"))


def test_restart_change_is_refused_per_object_and_others_still_apply(tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    rig = make_rig(tmp_path, vms=2, run="Always")
    try:
        w = rig.make_watcher()
        w.startup()
        rig.write_vm("vm0", run="Always", cores=2)  # restart class
        rig.write_vm("vm1", run="Always", labels={"a": "b"})  # metadata only
        report = w.on_change({str(rig.tree / "vm0.yaml"), str(rig.tree / "vm1.yaml")})
        assert [(r.key.name, r.needs) for r in report.refusals] == [("vm0", "--allow-restart")]
        assert [(o.key.name, o.word) for o in report.outcomes] == [("vm1", "configured")]
        assert "<vcpu" in rig.domains()[f"{rig.ns}_vm0"]
        assert rig.domain("vm0").vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_CONFIG |
                                            libvirt.VIR_DOMAIN_VCPU_MAXIMUM) == 1
        assert rig.events("object.refused")[0]["details"]["needs"] == "--allow-restart"
    finally:
        rig.cleanup()


def test_resync_heals_drift_and_counts_it(rig: Rig) -> None:
    w = rig.make_watcher()
    w.startup()
    # Someone removes a managed domain behind virtsync's back.
    rig.domain("vm2").undefine()
    report = w.resync()
    assert report.drift == 1
    assert [(o.key.name, o.word) for o in report.outcomes] == [("vm2", "created")]
    assert f"{rig.ns}_vm2" in rig.domains()
    assert rig.metrics.drift._value.get() == 1
    assert w.resync().changes == 0


def test_prune_is_opt_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    rig = make_rig(tmp_path, vms=6)
    try:
        w = rig.make_watcher()
        w.startup()
        (rig.tree / "vm5.yaml").unlink()
        report = w.on_change({str(rig.tree / "vm5.yaml")})
        assert report.outcomes == ()
        assert f"{rig.ns}_vm5" in rig.domains()
        assert rig.events("object.skipped")[0]["key"].endswith("/vm5")

        w.close()
        pruning = rig.make_watcher(prune=True)
        pruning.startup()
        assert f"{rig.ns}_vm5" not in rig.domains()
        assert len(rig.domains()) == 5

        # A file gone for a moment (an editor saving by rename) prunes nothing: in the
        # working tree, deletions wait for the full walk of the next resync.
        gone = rig.tree / "vm4.yaml"
        text = gone.read_text()
        gone.unlink()
        report = pruning.on_change({str(gone)})
        assert report.outcomes == () and f"{rig.ns}_vm4" in rig.domains()
        gone.write_text(text)
        assert pruning.resync().changes == 0
        assert f"{rig.ns}_vm4" in rig.domains()
        gone.unlink()
        report = pruning.resync()
        assert [(o.key.name, o.word) for o in report.outcomes] == [("vm4", "deleted")]
    finally:
        rig.cleanup()


def test_prune_cap_keeps_everything_when_too_much_left_the_tree(rig: Rig) -> None:
    w = rig.make_watcher(prune=True)
    w.startup()
    for i in range(3):
        (rig.tree / f"vm{i}.yaml").unlink()
    rig.write_vm("other")
    report = w.resync()
    assert len(rig.domains()) == 4  # three kept, one created
    assert [(o.key.name, o.word) for o in report.outcomes] == [("other", "created")]
    assert rig.events("prune.capped")[0]["details"]["deletions"] == 3


def test_stop_finishes_the_current_action_and_leaves_the_rest(tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    rig = make_rig(tmp_path, vms=5)
    try:
        w = rig.make_watcher()
        rig.watcher = w
        w.on_outcome = lambda o: w.request_stop("test")
        report = w.startup()
        assert report.result == "stopped"
        # The Cluster config comes first in the plan; the VMs were left for next time.
        assert [(o.key.kind, o.word) for o in report.outcomes] == [("Cluster", "created")]
        assert rig.domains() == {}
        # The inventory records exactly what was done, nothing planned but not run.
        assert list(w.inventory.entries) == [report.outcomes[0].key]
    finally:
        rig.cleanup()


def test_run_loop_reacts_to_saved_files_and_stops_cleanly(rig: Rig) -> None:
    w = rig.make_watcher(interval=3600, debounce=0.05)
    thread = threading.Thread(target=w.run)
    thread.start()
    try:
        assert wait_for(lambda: len(rig.domains()) == 3)
        rig.write_vm("vm1", labels={"saved": "yes"})
        assert wait_for(lambda: "saved" in rig.domains()[f"{rig.ns}_vm1"])
        rig.write_vm("vm9")
        assert wait_for(lambda: f"{rig.ns}_vm9" in rig.domains())
        # Editors' temp files and non-YAML files cause no cycle.
        time.sleep(0.3)  # let the last cycle finish logging
        n = len(rig.events("cycle.done"))
        (rig.tree / ".vm1.yaml.swp").write_text("junk")
        (rig.tree / "notes.txt").write_text("junk")
        time.sleep(0.3)
        assert len(rig.events("cycle.done")) == n
    finally:
        w.request_stop("test")
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert rig.events("watch.stopped")


def test_lifecycle_agent_runs_in_watch_and_enforces_run_strategy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    rig = make_rig(tmp_path, vms=1, run="Always")
    try:
        w = rig.make_watcher(agent=True)
        assert w.startup().result == "ok"
        assert rig.events("agent.start")
        dom = rig.domain("vm0")
        assert dom.isActive()
        dom.destroy()  # killed from outside: runStrategy Always starts it again
        assert wait_for(lambda: bool(rig.domain("vm0").isActive()), timeout=10)
    finally:
        rig.cleanup()


def test_observe_keys_reports_what_observe_reports_for_those_keys(rig: Rig) -> None:
    w = rig.make_watcher()
    w.startup()
    # An unmanaged domain named like a VM is a conflict in both.
    xml = rig.domain("vm0").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    root = etree.fromstring(xml.encode())
    for tag in ("uuid", "metadata", "sysinfo"):  # sysinfo would lend it the same UUID
        el = root.find(tag)
        if el is not None:
            root.remove(el)
    root.find("name").text = f"{rig.ns}_stranger"  # type: ignore[union-attr]
    rig.holder.defineXML(etree.tostring(root).decode())
    backend = w.backend
    assert isinstance(backend, LibvirtBackend)
    keys = [ObjectKey("VirtualMachine", rig.ns, n) for n in ("vm0", "vm2", "stranger", "none")]
    full = backend.observe()
    some = backend.observe_keys(keys)
    assert some.objects == tuple(o for o in full.objects if o.key in keys)
    assert [o.key.name for o in some.objects] == ["vm0", "vm2"]
    assert some.conflicts == tuple(k for k in full.conflicts if k in keys)
    assert [k.name for k in some.conflicts] == ["stranger"]


def test_saving_an_instancetype_updates_the_vms_that_use_it(rig: Rig) -> None:
    def instancetype(cpus: int) -> str:
        return yaml.safe_dump({
            "apiVersion": "instancetype.kubevirt.io/v1beta1",
            "kind": "VirtualMachineClusterInstancetype", "metadata": {"name": "small"},
            "spec": {"cpu": {"guest": cpus}, "memory": {"guest": "64Mi"}}})

    body = vm_body("sized", rig.ns)  # Halted: the new size applies without a restart
    domain = body["spec"]["template"]["spec"]["domain"]
    del domain["cpu"], domain["memory"]
    body["spec"]["instancetype"] = {"name": "small"}
    rig.write("small.yaml", instancetype(1))
    rig.write("sized.yaml", yaml.safe_dump(body))
    w = rig.make_watcher()
    assert w.startup().result == "ok"
    config_max = libvirt.VIR_DOMAIN_AFFECT_CONFIG | libvirt.VIR_DOMAIN_VCPU_MAXIMUM
    assert rig.domain("sized").vcpusFlags(config_max) == 1

    rig.write("small.yaml", instancetype(2))
    report = w.on_change({str(rig.tree / "small.yaml")})
    assert report.result == "ok"
    assert ("sized", "configured") in [(o.key.name, o.word) for o in report.outcomes]
    assert rig.domain("sized").vcpusFlags(config_max) == 2


def test_folder_modified_events_do_not_force_a_tree_walk() -> None:
    from watchdog.events import (
        DirCreatedEvent,
        DirModifiedEvent,
        FileClosedEvent,
        FileModifiedEvent,
    )

    from reconciler.tree.source import open_tree
    from reconciler.watch.events import EventHandler

    paths: list[tuple[str, bool]] = []
    (point,) = open_tree("/t").watch_points()
    handler = EventHandler(lambda p, whole: paths.append((p, whole)), point.relevant)
    # Saving vms/a.yaml: watchdog reports the file and, on Linux, its folder as modified.
    for event in (FileModifiedEvent("/t/vms/a.yaml"), DirModifiedEvent("/t/vms"),
                  FileClosedEvent("/t/vms/a.yaml"), DirCreatedEvent("/t/new"),
                  FileModifiedEvent("/t/.git/index")):
        handler.dispatch(event)
    # The folder-modified event is dropped (the file's own events name the change); a new
    # folder still goes through (it may hold specs: a walk is needed); git's own files
    # are not the working tree's. Only the close says the file is whole (issue 13).
    assert paths == [("/t/vms/a.yaml", False), ("/t/vms/a.yaml", True), ("/t/new", True)]


def test_startup_after_a_crash_resolves_its_journal_steps_and_sweeps_temp_files(
        rig: Rig) -> None:
    """Issue 8: what a `kill -9` left (an unfinished journal step, a temp disk file) is
    cleaned once watch's startup cycle converged; the next start notes nothing."""
    import os
    import time as _time

    from reconciler.execute.journal import Journal

    Journal(rig.state, "19700101T000000Z-dead0000").intent(
        "create", ObjectKey("VirtualMachine", rig.ns, "vm0"))
    claims = rig.base / "storage" / rig.ns / "claims"
    claims.mkdir(parents=True)
    leftover = claims / ".vm0-data.qcow2.k1ll9abc"
    leftover.write_bytes(b"half")
    os.utime(leftover, (_time.time() - 600, _time.time() - 600))
    w = rig.make_watcher()
    assert w.startup().result == "ok"
    assert [e["key"] for e in rig.events("journal.unfinished")] == [f"VirtualMachine/{rig.ns}/vm0"]
    assert rig.events("journal.resolved")[0]["details"]["steps"] == 1
    assert not leftover.exists()
    assert [e["details"]["path"] for e in rig.events("disk.temp-removed")] == [str(leftover)]
    w.close()
    w2 = rig.make_watcher()
    before = len(rig.events("journal.unfinished"))
    assert w2.startup().result == "ok"
    assert len(rig.events("journal.unfinished")) == before


def test_watch_parses_each_file_version_once(rig: Rig,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 9, item 4: startup, an edit and resyncs parse each file version once."""
    parses = count_parses(monkeypatch)
    w = rig.make_watcher()
    assert w.startup().result == "ok"
    rig.write_vm("vm1", labels={"tier": "web"})
    assert w.on_change({str(rig.tree / "vm1.yaml")}).result == "ok"
    w.resync()
    w.resync()
    assert parsed_more_than_once(parses) == {}
    # cluster.yaml and three VMs, plus the edited vm1's new version
    assert sorted(Path(d).name for d, _ in parses) == [
        "cluster.yaml", "vm0.yaml", "vm1.yaml", "vm1.yaml", "vm2.yaml"]
