"""The lifecycle agent on libvirt's test driver: real lifecycle events drive run strategies;
crash handling and CrashLoopBackOff through the agent's stop handler."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import libvirt
import pytest
from backend_helpers import TEST_URI, backend, manifest, node, vm_body

from node.lifecycle.agent import LifecycleAgent, ensure_event_loop
from node.lifecycle.decide import BackoffPolicy, StopKind
from reconciler.backends.libvirt import LibvirtBackend
from reconciler.core.model import ObjectKey

KEY = ObjectKey("VirtualMachine", "default", "web")


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[LibvirtBackend, LifecycleAgent, libvirt.virConnect]]:
    ensure_event_loop()  # before any connection that should deliver events
    conn = libvirt.open(TEST_URI)
    b = backend(tmp_path)
    agent_backend = backend(tmp_path)
    host = agent_backend.hosts["n1"]
    agent = LifecycleAgent(host, policy=BackoffPolicy(base=0.3, cap=1.0, reset_after=60))
    agent.start()
    try:
        yield b, agent, conn
    finally:
        agent.stop()
        agent_backend.close()
        b.close()
        conn.close()


def status(b: LibvirtBackend) -> str:
    return next(o for o in b.observe().objects if o.key == KEY).status.printable_status


def test_always_restarts_after_guest_shutdown(setup) -> None:
    b, _agent, conn = setup
    b.create(manifest(vm_body(run_strategy="Always")), revision="r", refs={})
    dom = conn.lookupByName("default_web")
    dom.shutdown()  # the guest powers itself off: STOPPED_SHUTDOWN
    assert wait_for(lambda: conn.lookupByName("default_web").isActive())


def test_always_restarts_after_outside_destroy(setup) -> None:
    b, _agent, conn = setup
    b.create(manifest(vm_body(run_strategy="Always")), revision="r", refs={})
    conn.lookupByName("default_web").destroy()
    assert wait_for(lambda: conn.lookupByName("default_web").isActive())


def test_rerun_on_failure_stays_off_after_guest_shutdown(setup) -> None:
    b, agent, conn = setup
    b.create(manifest(vm_body(run_strategy="RerunOnFailure")), revision="r", refs={})
    conn.lookupByName("default_web").shutdown()
    assert wait_for(lambda: any(d == "default_web" for d, _ in agent.decisions))
    time.sleep(0.2)
    assert not conn.lookupByName("default_web").isActive()
    assert agent.decisions[-1][1].start is False
    assert status(b) == "Stopped"


def test_operator_stop_is_not_undone(setup) -> None:
    b, agent, conn = setup
    b.create(manifest(vm_body(run_strategy="Always")), revision="r", refs={})
    b.stop(KEY)
    assert wait_for(lambda: any(d == "default_web" for d, _ in agent.decisions))
    time.sleep(0.2)
    assert not conn.lookupByName("default_web").isActive()
    assert agent.decisions[-1][1].reason == "stopped on request"


def test_restart_by_backend_is_not_doubled_by_agent(setup) -> None:
    b, agent, conn = setup
    b.create(manifest(vm_body(run_strategy="Always")), revision="r", refs={})
    b.update(manifest(vm_body(cores=2)), revision="r2", refs={}, restart=True)
    assert wait_for(lambda: any(d == "default_web" for d, _ in agent.decisions))
    assert agent.decisions[-1][1].start is False  # intent hold: the backend owned it
    assert conn.lookupByName("default_web").info()[3] == 2


def test_crash_loop_backs_off_then_restarts(setup) -> None:
    """The test driver cannot crash a guest, so the crash is handed to the agent's stop
    handler the way the event callback would (kind CRASHED) after powering it off."""
    b, agent, conn = setup
    b.create(manifest(vm_body(run_strategy="RerunOnFailure")), revision="r", refs={})
    uuid = conn.lookupByName("default_web").UUIDString()
    for expected_failures in (1, 2):
        dom = conn.lookupByName("default_web")
        assert wait_for(dom.isActive)
        agent.host.conn().lookupByUUIDString(uuid).destroy()
        time.sleep(0.1)  # let the DESTROYED event pass (RerunOnFailure: no restart)
        decision = agent.handle_stop(uuid, StopKind.CRASHED)
        assert decision is not None and decision.failures == expected_failures
        if expected_failures == 1:
            assert decision.delay == 0
        else:
            assert decision.crash_loop and decision.delay == pytest.approx(0.3)
            assert status(b) == "CrashLoopBackOff"
        # The worker thread starts it once the back-off has passed.
        assert wait_for(lambda: conn.lookupByName("default_web").isActive())
    assert status(b) == "Running"


def test_startup_scan_starts_always_vm_found_off(tmp_path: Path) -> None:
    ensure_event_loop()
    conn = libvirt.open(TEST_URI)
    b = backend(tmp_path, node(tmp_path))
    try:
        b.create(manifest(vm_body(run_strategy="Always")), revision="r", refs={})
        conn.lookupByName("default_web").shutdown()  # off while no agent watches
        assert not conn.lookupByName("default_web").isActive()
        agent_backend = backend(tmp_path)
        agent = LifecycleAgent(agent_backend.hosts["n1"])
        agent.start()
        try:
            assert wait_for(lambda: conn.lookupByName("default_web").isActive())
        finally:
            agent.stop()
            agent_backend.close()
    finally:
        b.close()
        conn.close()


def test_startup_scan_writes_nothing_for_halted_vms(tmp_path: Path) -> None:
    ensure_event_loop()
    conn = libvirt.open(TEST_URI)
    b = backend(tmp_path, node(tmp_path))
    try:
        for name in ("h1", "h2", "h3"):
            b.create(manifest(vm_body(name, run_strategy="Halted")), revision="r", refs={})
        before = {n: conn.lookupByName(f"default_{n}").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                  for n in ("h1", "h2", "h3")}
        agent_backend = backend(tmp_path)
        agent = LifecycleAgent(agent_backend.hosts["n1"])
        agent.start()
        try:
            # Every found-off domain is handled (decided), and none is written to.
            assert wait_for(lambda: len(agent.decisions) >= 3)
            assert all(not d.start for _, d in agent.decisions)
        finally:
            agent.stop()
            agent_backend.close()
        after = {n: conn.lookupByName(f"default_{n}").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                 for n in ("h1", "h2", "h3")}
        assert after == before
    finally:
        b.close()
        conn.close()


@pytest.mark.parametrize("when", ["while the agent watches", "before the agent started"])
def test_halted_vm_started_outside_is_shut_down(tmp_path: Path, when: str) -> None:
    """Rule 16, KubeVirt's Halted: a guest started outside virtsync (`virsh start`) is
    shut down gracefully (the power button, never forced); other strategies are left
    running."""
    ensure_event_loop()
    conn = libvirt.open(TEST_URI)
    b = backend(tmp_path, node(tmp_path))
    agent_backend = backend(tmp_path)
    agent = LifecycleAgent(agent_backend.hosts["n1"])
    try:
        b.create(manifest(vm_body("halted", run_strategy="Halted")), revision="r", refs={})
        b.create(manifest(vm_body("manual", run_strategy="Manual")), revision="r", refs={})
        if when == "while the agent watches":
            agent.start()
        for name in ("halted", "manual"):
            conn.lookupByName(f"default_{name}").create()
        if when == "before the agent started":
            agent.start()
        assert wait_for(lambda: not conn.lookupByName("default_halted").isActive())
        state = conn.lookupByName("default_halted").state()
        assert state == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN]
        assert any(d == "default_halted" and "Halted" in dec.reason for d, dec in agent.decisions)
        time.sleep(0.2)
        assert conn.lookupByName("default_manual").isActive()
    finally:
        agent.stop()
        agent_backend.close()
        b.close()
        for name in ("halted", "manual"):
            dom = conn.lookupByName(f"default_{name}")
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        conn.close()
