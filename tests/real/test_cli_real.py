"""The reconcile loop through the real CLI on qemu:///system: apply → plan is empty →
change → apply → prune, a guest that truly boots, and two concurrent applies of which
exactly one runs. Most VMs are Halted (define and disks only): cheap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import libvirt
import yaml

from . import tinyguest

NS = f"vscli{tinyguest.SUFFIX}"
URI = "qemu:///system"


def vm(name: str, *, cores: int = 1, run: str = "Halted", boot: bool = False) -> dict[str, Any]:
    domain: dict[str, Any] = {
        "cpu": {"cores": cores}, "memory": {"guest": "128Mi"},
        "devices": {"disks": [{"name": "data", "disk": {"bus": "virtio"}}],
                    "interfaces": [{"name": "default", "masquerade": {}}]},
    }
    if boot:
        domain["firmware"] = tinyguest.kernel_boot()
    return {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"runStrategy": run,
                 "dataVolumeTemplates": [{"metadata": {"name": f"{name}-data"}, "spec": {
                     "storage": {"resources": {"requests": {"storage": "8Mi"}}},
                     "source": {"blank": {}}}}],
                 "template": {"spec": {
                     "terminationGracePeriodSeconds": 20,
                     "domain": domain,
                     "networks": [{"name": "default", "pod": {}}],
                     "volumes": [{"name": "data", "dataVolume": {"name": f"{name}-data"}}]}}},
    }


class Repo:
    """A repo with its Cluster (one local node) and state directory, under node_root with
    names starting with `prefix` (each test file its own)."""

    def __init__(self, node_root: Path, tiny_guest_dir: Path, prefix: str = "cli") -> None:
        self.root = node_root / f"{prefix}-repo"
        self.storage = node_root / f"{prefix}-storage"
        images = node_root / f"{prefix}-images"
        for d in (self.root / "vms", self.storage, images):
            d.mkdir(parents=True, exist_ok=True)
        tinyguest.install_image(tiny_guest_dir, images)
        tinyguest.make_world_traversable(self.storage)
        tinyguest.make_world_traversable(images)
        (self.root / "cluster.yaml").write_text(yaml.safe_dump({
            "apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "c"},
            "spec": {"nodes": [{"name": "local", "uri": URI, "storageDir": str(self.storage),
                                "imageDir": str(images)}]}}))
        self.env = dict(os.environ, VIRTSYNC_STATE_DIR=str(node_root / f"{prefix}-state"))

    def put(self, body: dict[str, Any]) -> None:
        (self.root / "vms" / f"{body['metadata']['name']}.yaml").write_text(yaml.safe_dump(body))

    def virtsync(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "reconciler", *args], env=self.env,
                              capture_output=True, text=True, timeout=300, check=False)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "reconciler", *args], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_console(storage: Path, domain: str, marker: str, timeout: float = 60) -> None:
    """Wait until the domain's console log (written by virtlogd) shows `marker`."""
    deadline = time.monotonic() + timeout
    while True:
        logs = list(storage.rglob(f"{domain}*.log"))
        if logs and marker in logs[0].read_text(errors="replace"):
            return
        assert time.monotonic() < deadline, f"{domain}: no {marker!r} on the console"
        time.sleep(0.2)


def ours(conn: Any) -> dict[str, Any]:
    return {d.name(): d for d in conn.listAllDomains() if d.name().startswith(f"{NS}_")}


def clear(conn: Any, repo: Repo) -> None:
    """Remove this file's domains and the repo's VM specs (a fixture's set-up and end)."""
    for d in ours(conn).values():
        if d.isActive():
            d.destroy()
        d.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
    for f in (repo.root / "vms").glob("*.yaml"):
        f.unlink()


def test_reconcile_loop_through_the_cli(libvirt_conn: Any, node_root: Path,
                                        tiny_guest_dir: Path) -> None:
    import libvirt

    repo = Repo(node_root, tiny_guest_dir)
    try:
        for name in ("a", "b", "c"):
            repo.put(vm(name))
        repo.put(vm("boot", run="Always", boot=True))
        r = repo.virtsync("apply", str(repo.root))
        assert r.returncode == 0, r.stderr
        assert set(ours(libvirt_conn)) == {f"{NS}_a", f"{NS}_b", f"{NS}_c", f"{NS}_boot"}
        assert ours(libvirt_conn)[f"{NS}_boot"].isActive()

        # The guest truly boots: its console shows its init running.
        wait_console(repo.storage, f"{NS}_boot", "VS-BOOT")

        r = repo.virtsync("plan", str(repo.root), "--detailed-exitcode")
        assert r.returncode == 0, r.stdout + r.stderr

        # A restart-class change on a halted VM applies without a restart permission.
        repo.put(vm("a", cores=2))
        r = repo.virtsync("plan", str(repo.root), "-o", "json")
        assert r.returncode == 1
        (change,) = json.loads(r.stdout)["changes"]
        assert change["name"] == "a" and change["disruption"] == "none"
        r = repo.virtsync("apply", str(repo.root))
        assert r.returncode == 0, r.stderr
        config_max = libvirt.VIR_DOMAIN_AFFECT_CONFIG | libvirt.VIR_DOMAIN_VCPU_MAXIMUM
        assert ours(libvirt_conn)[f"{NS}_a"].vcpusFlags(config_max) == 2
        assert repo.virtsync("plan", str(repo.root)).returncode == 0

        # Prune: opt-in, disk kept (no Delete policy).
        (repo.root / "vms" / "c.yaml").unlink()
        assert repo.virtsync("apply", str(repo.root)).returncode == 0
        assert f"{NS}_c" in ours(libvirt_conn)
        r = repo.virtsync("apply", str(repo.root), "--prune")
        assert r.returncode == 0, r.stderr
        assert f"{NS}_c" not in ours(libvirt_conn)
        assert list(repo.storage.rglob("c-data.qcow2")), "the pruned VM's disk must stay"
        r = repo.virtsync("status", str(repo.root), "-o", "json")
        rows = {row["name"]: row for row in json.loads(r.stdout)}
        assert rows["boot"]["printableStatus"] == "Running" and rows["a"]["drift"] is False

        # Two applies at once: exactly one runs, the other names it and changes nothing.
        for i in range(30):
            repo.put(vm(f"many-{i:02d}"))
        first = repo.start("apply", str(repo.root))
        time.sleep(0.15)
        second = repo.start("apply", str(repo.root))
        results = [(p.wait(timeout=300), p.communicate()) for p in (first, second)]
        codes = sorted(code for code, _ in results)
        assert codes == [0, 2], results
        loser = next(err for code, (_, err) in results if code == 2)
        assert "another virtsync holds" in loser and "pid" in loser
        assert len([n for n in ours(libvirt_conn) if "many-" in n]) == 30
    finally:
        for dom in ours(libvirt_conn).values():
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)


def test_agent_restarts_an_always_vm_shut_down_from_outside(libvirt_conn: Any, node_root: Path,
                                                           tiny_guest_dir: Path) -> None:
    import libvirt

    repo = Repo(node_root, tiny_guest_dir)
    repo.put(vm("kept", run="Always", boot=True))
    agent: subprocess.Popen[str] | None = None
    try:
        assert repo.virtsync("apply", str(repo.root)).returncode == 0
        dom = ours(libvirt_conn)[f"{NS}_kept"]
        assert dom.isActive()
        agent = repo.start("agent", str(repo.root))
        time.sleep(1.0)  # the agent registers for lifecycle events
        wait_console(repo.storage, f"{NS}_kept", "VS-READY")  # acpid is listening
        first = dom.ID()
        dom.shutdown()  # ACPI from outside: the guest powers itself off
        deadline = time.monotonic() + 60
        # (a virDomain object caches its ID: look the domain up again each time)
        while not ((now := libvirt_conn.lookupByName(f"{NS}_kept")).isActive()
                   and now.ID() != first):
            assert time.monotonic() < deadline, "runStrategy Always: the agent must restart it"
            time.sleep(0.2)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
        for d in ours(libvirt_conn).values():
            if d.isActive():
                d.destroy()
            d.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
