"""Rules 16 and 17 through the CLI on qemu:///system with the tiny guest: edits never
change a guest's power state unless its run strategy demands it, a Halted guest started
from outside is reported and shut down by the agent, `Starting` shows while a guest
starts, pin → plan is empty, and a rename that fails midway keeps the old domain."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
import yaml
from lxml import etree

from node.identity.node_store import IdentityStore
from reconciler.backends.libvirt import LibvirtBackend
from reconciler.core.model import ObjectKey

from .test_cli_real import NS, Repo, clear, ours, vm, wait_console


def wait(cond: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.1)


@pytest.fixture()
def repo(libvirt_conn: Any, node_root: Path, tiny_guest_dir: Path) -> Iterator[Repo]:
    r = Repo(node_root, tiny_guest_dir)
    for f in (r.root / "vms").glob("*.yaml"):
        f.unlink()
    try:
        yield r
    finally:
        clear(libvirt_conn, r)


def labelled(body: dict[str, Any], value: str) -> dict[str, Any]:
    body["metadata"]["labels"] = {"edited": value}
    return body


def active(conn: Any, name: str) -> bool:
    return bool(conn.lookupByName(f"{NS}_{name}").isActive())


def apply_ok(repo: Repo, *extra: str) -> None:
    r = repo.virtsync("apply", str(repo.root), *extra)
    assert r.returncode == 0, r.stdout + r.stderr


def test_edits_keep_the_power_state_the_strategy_leaves(libvirt_conn: Any, repo: Repo) -> None:
    """RerunOnFailure after the guest shut itself down, Always after `virtsync stop`,
    Manual never started: a label edit (apply) starts none of them."""
    repo.put(vm("rerun", run="RerunOnFailure", boot=True))
    repo.put(vm("always", run="Always", boot=True))
    repo.put(vm("manual", run="Manual", boot=True))
    apply_ok(repo)
    assert active(libvirt_conn, "rerun") and active(libvirt_conn, "always")
    assert not active(libvirt_conn, "manual")
    wait_console(repo.storage, f"{NS}_rerun", "VS-READY")  # acpid is listening
    libvirt_conn.lookupByName(f"{NS}_rerun").shutdown()  # the guest powers itself off
    wait(lambda: not active(libvirt_conn, "rerun"), 60, "guest shutdown")
    assert libvirt_conn.lookupByName(f"{NS}_rerun").state()[1] == \
        libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN
    r = repo.virtsync("stop", f"{NS}/always", "--path", str(repo.root), "--force",
                      "--grace-period", "30")
    assert r.returncode == 0, r.stderr

    for name, run in (("rerun", "RerunOnFailure"), ("always", "Always"), ("manual", "Manual")):
        repo.put(labelled(vm(name, run=run, boot=True), "yes"))
    apply_ok(repo)
    assert not any(active(libvirt_conn, n) for n in ("rerun", "always", "manual"))
    assert repo.virtsync("plan", str(repo.root), "--detailed-exitcode").returncode == 0

    # `virtsync start` ends the operator stop; the next edit keeps the guest running.
    assert repo.virtsync("start", f"{NS}/always", "--path", str(repo.root)).returncode == 0
    repo.put(labelled(vm("always", run="Always", boot=True), "again"))
    apply_ok(repo)
    assert active(libvirt_conn, "always")


def test_halted_guest_started_outside_is_reported_and_shut_down(libvirt_conn: Any,
                                                                repo: Repo) -> None:
    repo.put(vm("halted", run="Halted", boot=True))
    apply_ok(repo)
    dom = libvirt_conn.lookupByName(f"{NS}_halted")
    dom.create()  # `virsh start`
    r = repo.virtsync("plan", str(repo.root), "-o", "json")
    assert r.returncode == 1, r.stderr
    (change,) = json.loads(r.stdout)["changes"]
    assert change["actions"] == ["stop"] and "Halted" in change["cause"]
    rows = json.loads(repo.virtsync("status", str(repo.root), "-o", "json").stdout)
    assert {row["name"]: row["drift"] for row in rows}["halted"] is True

    agent = repo.start("agent", str(repo.root))
    try:
        # The agent presses the power button until the guest (once its acpid runs)
        # powers itself off: graceful, never forced.
        wait(lambda: not active(libvirt_conn, "halted"), 90, "agent stops the Halted guest")
        state = libvirt_conn.lookupByName(f"{NS}_halted").state()
        assert state == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN]
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
    assert repo.virtsync("plan", str(repo.root), "--detailed-exitcode").returncode == 0


def test_starting_shows_while_the_guest_starts(libvirt_conn: Any, repo: Repo,
                                               node_root: Path) -> None:
    """libvirt reports PAUSED/STARTING_UP between QEMU's launch and its CPUs running."""
    repo.put(vm("boot", run="Manual", boot=True))
    apply_ok(repo)
    backend = LibvirtBackend.from_manifests(
        [_cluster_manifest(repo)], state=node_root / "cli-state")
    key = ObjectKey("VirtualMachine", NS, "boot")
    dom = libvirt_conn.lookupByName(f"{NS}_boot")
    seen: list[str] = []
    states: list[tuple[int, int]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            state, reason = dom.state()
            states.append((state, reason))
            if state == libvirt.VIR_DOMAIN_PAUSED:
                seen.extend(o.status.printable_status
                            for o in backend.observe_keys([key]).objects)
            if state == libvirt.VIR_DOMAIN_RUNNING:
                return

    for _ in range(5):  # the window is short; a few tries
        t = threading.Thread(target=watch)
        t.start()
        dom.create()
        t.join(timeout=30)
        done.set()
        if seen:
            break
        dom.destroy()
        done.clear()
    backend.close()
    assert (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_STARTING_UP) in states
    assert seen and set(seen) <= {"Starting", "Running"} and "Starting" in seen, seen
    assert "Migrating" not in seen


def _cluster_manifest(repo: Repo):  # type: ignore[no-untyped-def]
    from reconciler.tree.loader import load_bytes

    return load_bytes((repo.root / "cluster.yaml").read_bytes(), "cluster.yaml").manifests[0]


def _console(repo: Repo, name: str) -> str:
    logs = list(repo.storage.rglob(f"{NS}_{name}*.log"))
    return logs[0].read_text(errors="replace") if logs else ""


def _identity(conn: Any, name: str) -> tuple[str, str, str]:
    root = etree.fromstring(conn.lookupByName(f"{NS}_{name}").XMLDesc(
        libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
    return (root.findtext("uuid") or "",
            root.findtext("sysinfo/system/entry[@name='serial']") or "",
            ",".join(m.get("address", "") for m in root.iterfind("devices/interface/mac")))


def _data_file(conn: Any, name: str) -> str:
    root = etree.fromstring(conn.lookupByName(f"{NS}_{name}").XMLDesc().encode())
    return next(s.get("file", "") for s in root.iterfind("devices/disk/source")
                if "data" in s.get("file", ""))


def test_pin_then_rename_failing_midway_keeps_a_working_domain(libvirt_conn: Any,
                                                                 repo: Repo) -> None:
    repo.put(vm("web", run="Always", boot=True))
    repo.put(vm("idle"))  # Halted
    apply_ok(repo)
    before, disk = _identity(libvirt_conn, "web"), _data_file(libvirt_conn, "web")

    # Pin, then plan: empty, and nothing starts (rule 17, rule 16).
    r = repo.virtsync("pin", str(repo.root))
    assert r.returncode == 0, r.stderr
    r = repo.virtsync("plan", str(repo.root), "--detailed-exitcode")
    assert r.returncode == 0, r.stdout
    assert not active(libvirt_conn, "idle")

    # Rename + a machine type QEMU does not have: libvirt refuses the new definition
    # after the old domain was undefined (the same UUID cannot be defined twice). The
    # old domain must come back, running, with its identity record.
    wait_console(repo.storage, f"{NS}_web", "VS-READY")  # acpid listens: stops gracefully
    pinned = yaml.safe_load((repo.root / "vms" / "web.yaml").read_text())
    (repo.root / "vms" / "web.yaml").unlink()
    renamed = json.loads(json.dumps(pinned))
    renamed["metadata"]["name"] = "web2"
    renamed["spec"]["template"]["spec"]["domain"]["machine"] = {"type": "pc-virtsync-none"}
    repo.put(renamed)
    r = repo.virtsync("apply", str(repo.root), "--allow-restart")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "its domain was restored" in r.stdout
    assert set(ours(libvirt_conn)) == {f"{NS}_web", f"{NS}_idle"}
    assert active(libvirt_conn, "web") and _identity(libvirt_conn, "web") == before
    store = IdentityStore(repo.storage)
    assert store.get(ObjectKey("VirtualMachine", NS, "web")) is not None
    assert store.get(ObjectKey("VirtualMachine", NS, "web2")) is None

    # Fixed in git: the rename goes through with the same identity and disk, running.
    wait(lambda: _console(repo, "web").count("VS-READY") >= 2, 60, "restored guest boots")
    del renamed["spec"]["template"]["spec"]["domain"]["machine"]
    repo.put(renamed)
    apply_ok(repo, "--allow-restart")
    assert set(ours(libvirt_conn)) == {f"{NS}_web2", f"{NS}_idle"}
    assert _identity(libvirt_conn, "web2") == before and _data_file(libvirt_conn, "web2") == disk
    assert active(libvirt_conn, "web2")
    wait_console(repo.storage, f"{NS}_web2", f"VS-UUID {before[0]}")
    r = repo.virtsync("plan", str(repo.root), "--detailed-exitcode")
    assert r.returncode == 0, r.stdout
