"""Real lane for the libvirt backend: the tiny guest on qemu:///system through
LibvirtBackend — create → Running → graceful stop → start, identity kept; a guest that
ignores ACPI is reported, not killed, until force is asked; the lifecycle agent restarts
a RerunOnFailure guest whose QEMU process died."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import libvirt
import pytest

from node.cluster.config import ClusterConfig, NodeConfig
from node.lifecycle.agent import LifecycleAgent, ensure_event_loop
from reconciler.backends.base import BackendError
from reconciler.backends.libvirt import LibvirtBackend
from reconciler.core.model import Manifest, ObjectKey, SourceRef

from . import tinyguest

# Its own namespace, and names unique per process: other sessions sharing this libvirtd
# clean up "vsreal_*" domains when they end, and may run this file at the same time.
NS = f"vsbackend{tinyguest.SUFFIX}"
SUFFIX = str(os.getpid())


def make_backend(node: tinyguest.Node, tmp_path: Path) -> LibvirtBackend:
    cfg = NodeConfig(
        "local", "qemu:///system", str(node.storage.storage_dir), str(node.storage.image_dir)
    )
    return LibvirtBackend(ClusterConfig(nodes=(cfg,)), state=tmp_path / "state")


def vm(body: dict) -> Manifest:
    return Manifest(
        "kubevirt.io/v1",
        "VirtualMachine",
        NS,
        body["metadata"]["name"],
        body,
        SourceRef("real.yaml"),
    )


def console(node: tinyguest.Node, name: str) -> Path:
    return Path(node.storage.storage_dir) / ".virtsync-console" / f"{NS}_{name}.log"


def wait(cond, timeout: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


def status(b: LibvirtBackend, key: ObjectKey):  # type: ignore[no-untyped-def]
    return next(o for o in b.observe().objects if o.key == key)


def test_create_run_graceful_stop_start(node: tinyguest.Node, tmp_path: Path) -> None:
    b = make_backend(node, tmp_path)
    key = ObjectKey("VirtualMachine", NS, f"bk-{SUFFIX}")
    log = console(node, f"bk-{SUFFIX}")
    try:
        b.create(vm(tinyguest.tiny_vm(NS, f"bk-{SUFFIX}", grace=30)), revision="r1", refs={})
        assert wait(lambda: log.exists() and "VS-READY" in log.read_text(errors="replace"))
        first = status(b, key)
        assert first.status.printable_status == "Running"
        assert f"VS-UUID {first.identity.uuid}" in log.read_text(errors="replace")

        t0 = time.monotonic()
        b.stop(key)  # ACPI power button; the guest's acpid powers off
        took = time.monotonic() - t0
        dom = node.conn.lookupByName(f"{NS}_bk-{SUFFIX}")
        assert dom.state() == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN]
        assert took < 30
        assert status(b, key).status.printable_status == "Stopped"

        log.write_text("")
        b.start(key)
        assert wait(lambda: "VS-READY" in log.read_text(errors="replace"))
        again = status(b, key)
        assert again.status.printable_status == "Running"
        assert again.identity == first.identity
    finally:
        b.delete(key, delete_disks=True, force=True)
        b.close()


def test_guest_ignoring_acpi_is_reported_then_forced(node: tinyguest.Node, tmp_path: Path) -> None:
    """No OS at all (BIOS finds nothing to boot) cannot react to the power button."""
    body = tinyguest.tiny_vm(NS, f"deaf-{SUFFIX}", grace=1)
    domain = body["spec"]["template"]["spec"]["domain"]
    del domain["firmware"]
    b = make_backend(node, tmp_path)
    key = ObjectKey("VirtualMachine", NS, f"deaf-{SUFFIX}")
    try:
        b.create(vm(body), revision="r", refs={})
        with pytest.raises(
            BackendError, match=r"guest did not stop within 1s; use --force \(may corrupt data\)"
        ):
            b.stop(key)
        dom = node.conn.lookupByName(f"{NS}_deaf-{SUFFIX}")
        assert dom.isActive()
        b.stop(key, force=True)
        assert dom.state() == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED]
    finally:
        b.delete(key, delete_disks=True, force=True)
        b.close()


def test_agent_restarts_rerun_on_failure_after_qemu_dies(
    node: tinyguest.Node, tmp_path: Path
) -> None:
    ensure_event_loop()
    body = tinyguest.tiny_vm(NS, f"phoenix-{SUFFIX}")
    body["spec"]["runStrategy"] = "RerunOnFailure"
    b = make_backend(node, tmp_path)
    agent_b = make_backend(node, tmp_path)
    agent = LifecycleAgent(agent_b.hosts["local"])
    key = ObjectKey("VirtualMachine", NS, f"phoenix-{SUFFIX}")
    try:
        b.create(vm(body), revision="r", refs={})
        agent.start()
        dom = node.conn.lookupByName(f"{NS}_phoenix-{SUFFIX}")
        old_id = dom.ID()
        pid = int(Path(f"/run/libvirt/qemu/{NS}_phoenix-{SUFFIX}.pid").read_text())
        os.kill(pid, signal.SIGKILL)  # QEMU dies: STOPPED_FAILED, a failure
        assert wait(lambda: any(d == f"{NS}_phoenix-{SUFFIX}" for d, _ in agent.decisions), 20)
        assert agent.decisions[-1][1].start is True
        assert wait(
            lambda: (
                node.conn.lookupByName(f"{NS}_phoenix-{SUFFIX}").isActive()
                and node.conn.lookupByName(f"{NS}_phoenix-{SUFFIX}").ID() != old_id
            ),
            30,
        )
        assert "failed" in agent.decisions[-1][1].reason
    finally:
        agent.stop()
        agent_b.close()
        b.delete(key, delete_disks=True, force=True)
        b.close()
