"""Rule 18 on libvirt's test driver, through the CLI: two installations (two state
directories) share one node. Each lists, enforces run strategies on and changes only its
own VMs, unless asked for all; a VM written by the first release (a marker without an
installation id) belongs to the installation whose inventory lists it, and is adopted by
its next define."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import libvirt
import pytest

from node.identity.metadata import NS, PREFIX, owner_element_xml, parse_owner_metadata
from node.lifecycle.agent import ensure_event_loop
from reconciler.cli import main

from .test_apply_testdriver import Tree, conn, vm

__all__ = ["conn"]  # fixture used by name


class Installation:
    """One state directory with its own source tree and storage on the shared node."""

    def __init__(self, base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tree = Tree(base / "repo", base / "storage")
        self.state = base / "state"
        self.monkeypatch = monkeypatch

    def run(self, *argv: str) -> int:
        self.monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(self.state))
        return main(list(argv))

    def apply(self) -> None:
        assert self.run("apply", str(self.tree.root)) == 0

    def listed(self, capsys: pytest.CaptureFixture[str], *flags: str) -> set[str]:
        capsys.readouterr()
        assert self.run("status", str(self.tree.root), "-o", "json", *flags) == 0
        return {row["name"] for row in json.loads(capsys.readouterr().out)}


@pytest.fixture()
def two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Installation, Installation]:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    return Installation(tmp_path / "a", monkeypatch), Installation(tmp_path / "b", monkeypatch)


def installation_of(conn: Any, name: str) -> str:
    owner = parse_owner_metadata(conn.lookupByName(f"e2e_{name}").XMLDesc(
        libvirt.VIR_DOMAIN_XML_INACTIVE))
    assert owner is not None
    return owner.installation


def strip_installation(conn: Any, name: str) -> None:
    """Make the marker look like the first release wrote it (no installation id)."""
    dom = conn.lookupByName(f"e2e_{name}")
    owner = parse_owner_metadata(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    assert owner is not None
    flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (
        libvirt.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                    owner_element_xml(replace(owner, installation="")), PREFIX, NS, flags)


def test_status_lists_only_this_installations_vms(
        conn: Any, two: tuple[Installation, Installation],
        capsys: pytest.CaptureFixture[str]) -> None:
    a, b = two
    a.tree.put(vm("alpha", run="Halted"))
    a.tree.put(vm("alpha2"))
    b.tree.put(vm("beta"))
    a.apply()
    b.apply()
    ids = {installation_of(conn, n) for n in ("alpha", "alpha2", "beta")}
    assert len(ids) == 2 and "" not in ids
    assert a.listed(capsys) == {"alpha", "alpha2"}
    assert b.listed(capsys) == {"beta"}
    assert a.listed(capsys, "--all-installations") == {"alpha", "alpha2", "beta"}
    assert (a.state / "installation-id").read_text().strip() == installation_of(conn, "alpha")


def test_other_installations_vm_is_never_changed(
        conn: Any, two: tuple[Installation, Installation],
        capsys: pytest.CaptureFixture[str]) -> None:
    a, b = two
    a.tree.put(vm("alpha"))
    a.apply()
    before = conn.lookupByName("e2e_alpha").XMLDesc()
    b.tree.put(vm("alpha", cores=2))  # the same name from another installation
    assert b.run("apply", str(b.tree.root), "--allow-restart") == 2
    assert "another virtsync installation" in capsys.readouterr().err
    assert b.run("stop", "e2e/alpha", "--path", str(b.tree.root)) == 2
    assert conn.lookupByName("e2e_alpha").XMLDesc() == before
    assert conn.lookupByName("e2e_alpha").isActive()


def test_first_release_markers_belong_to_the_inventory_that_lists_them(
        conn: Any, two: tuple[Installation, Installation],
        capsys: pytest.CaptureFixture[str]) -> None:
    a, b = two
    a.tree.put(vm("alpha", run="Halted"))
    b.tree.put(vm("gamma", run="Halted"))
    a.apply()
    b.apply()
    strip_installation(conn, "alpha")
    strip_installation(conn, "gamma")
    assert a.listed(capsys) == {"alpha"}
    assert b.listed(capsys) == {"gamma"}
    # Adopted: the next define (any change applied) writes this installation's id.
    a.tree.put(vm("alpha", run="Halted", cores=2))
    a.apply()
    assert installation_of(conn, "alpha") == (a.state / "installation-id").read_text().strip()
    assert installation_of(conn, "gamma") == ""


def run_until(inst: Installation, done: Callable[[], bool], *argv: str) -> None:
    """`virtsync agent|watch` in this process (they wait for SIGTERM): send SIGTERM once
    `done` holds (or after 10 s), from another thread."""
    def stopper() -> None:
        try:
            deadline = time.monotonic() + 10
            while not done() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # time for a wrong start to show, too
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    thread = threading.Thread(target=stopper, daemon=True)
    thread.start()
    try:
        assert inst.run(*argv) == 0
    finally:
        thread.join()
        for s, handler in previous.items():
            signal.signal(s, handler)


def test_agent_enforces_run_strategies_only_on_this_installations_vms(
        conn: Any, two: tuple[Installation, Installation]) -> None:
    ensure_event_loop()
    a, b = two
    a.tree.put(vm("alpha"))
    b.tree.put(vm("beta"))
    b.tree.put(vm("beta2"))
    a.apply()
    b.apply()
    for name in ("alpha", "beta", "beta2"):
        conn.lookupByName(f"e2e_{name}").destroy()  # off while no agent watched

    def active(name: str) -> bool:
        return bool(conn.lookupByName(f"e2e_{name}").isActive())

    run_until(a, lambda: active("alpha"), "agent", str(a.tree.root))
    assert active("alpha")
    assert not active("beta") and not active("beta2")  # Always, but not this installation's

    # Asked for every installation, the agent starts them too.
    run_until(a, lambda: active("beta") and active("beta2"),
              "agent", str(a.tree.root), "--all-installations")
    assert active("beta") and active("beta2")


def test_watch_agent_enforces_run_strategies_only_on_this_installations_vms(
        conn: Any, two: tuple[Installation, Installation]) -> None:
    ensure_event_loop()
    a, b = two
    a.tree.put(vm("alpha"))
    b.tree.put(vm("beta"))
    a.apply()
    b.apply()

    def active(name: str) -> bool:
        return bool(conn.lookupByName(f"e2e_{name}").isActive())

    def destroy_then(cond: Callable[[], bool]) -> Callable[[], bool]:
        """Once watch's agent is up (alpha is running), kill both from outside."""
        state = {"killed": False}

        def check() -> bool:
            if not state["killed"]:
                time.sleep(1.0)
                for name in ("alpha", "beta"):
                    if active(name):
                        conn.lookupByName(f"e2e_{name}").destroy()
                state["killed"] = True
            return cond()
        return check

    watch = ("watch", str(a.tree.root), "--interval", "3600")
    run_until(a, destroy_then(lambda: active("alpha")), *watch)
    assert active("alpha") and not active("beta")  # Always, but not this installation's

    run_until(a, destroy_then(lambda: active("alpha") and active("beta")), *watch,
              "--all-installations")
    assert active("alpha") and active("beta")
