"""Safety rule 7 on the real lane: `kill -9` at every journalled step of a 50-VM apply,
then rerun, converges with no duplicate domains, no domain without owner metadata, and
no lost or altered disk file; the final plan is empty.

Each run is a real `virtsync apply` process killed with SIGKILL by the journal's fault
hook (VIRTSYNC_FAULT_KILL): alternately right after a step's side effect (before it is
recorded done — the adoption case) and right after the next step's intent is on disk
(before its side effect). Every run completes exactly one step before dying, so 50 VMs
take about 50 killed runs and every step position is hit. VMs are Halted: defining them
and creating their disks is the whole work.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from node.identity.metadata import NS as OWNER_NS

from . import tinyguest

VMS = 50
NAMESPACE = f"crash{tinyguest.SUFFIX}"
URI = "qemu:///system"


def _tree(root: Path, storage: Path, images: Path) -> None:
    (root / "vms").mkdir(parents=True)
    (root / "cluster.yaml").write_text(yaml.safe_dump({
        "apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "crash"},
        "spec": {"nodes": [{"name": "local", "uri": URI, "storageDir": str(storage),
                            "imageDir": str(images)}]},
    }))
    for i in range(VMS):
        name = f"vm-{i:02d}"
        (root / "vms" / f"{name}.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "runStrategy": "Halted",
                "dataVolumeTemplates": [{"metadata": {"name": f"{name}-data"}, "spec": {
                    "storage": {"resources": {"requests": {"storage": "8Mi"}}},
                    "source": {"blank": {}}}}],
                "template": {"spec": {
                    "domain": {"memory": {"guest": "64Mi"},
                               "devices": {"disks": [{"name": "data", "disk": {}}],
                                           "interfaces": [{"name": "default",
                                                           "masquerade": {}}]}},
                    "networks": [{"name": "default", "pod": {}}],
                    "volumes": [{"name": "data", "dataVolume": {"name": f"{name}-data"}}],
                }},
            },
        }))


def _apply(root: Path, env: dict[str, str], fault: str | None) -> subprocess.CompletedProcess[str]:
    run_env = dict(env)
    if fault:
        run_env["VIRTSYNC_FAULT_KILL"] = fault
    return subprocess.run([sys.executable, "-m", "reconciler", "apply", str(root),
                           "--auto-approve"], env=run_env, capture_output=True, text=True,
                          timeout=300, check=False)


def _disks(storage: Path) -> dict[str, str]:
    return {str(p.relative_to(storage)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in storage.rglob("*.qcow2")}


def _ours(conn: Any) -> list[Any]:
    return [d for d in conn.listAllDomains() if d.name().startswith(f"{NAMESPACE}_")]


def test_kill_at_every_step_converges(libvirt_conn: Any, node_root: Path) -> None:
    import libvirt

    storage, images, state = (node_root / f"crash-{d}" for d in ("storage", "images", "state"))
    for d in (storage, images):
        d.mkdir()
    root = node_root / "crash-repo"
    _tree(root, storage, images)
    env = dict(os.environ, VIRTSYNC_STATE_DIR=str(state))
    try:
        seen: dict[str, str] = {}
        kills = 0
        for run in range(VMS + 5):
            fault = "action:1" if run % 2 == 0 else "intent:2"
            done = _apply(root, env, fault)
            for path, digest in _disks(storage).items():
                # A disk, once created, is never lost nor rewritten by a later run.
                assert seen.setdefault(path, digest) == digest, path
            assert set(seen) <= set(_disks(storage)), "a disk file disappeared"
            if done.returncode == -signal.SIGKILL:
                kills += 1
                continue
            assert done.returncode == 0, done.stderr
            break
        assert kills >= VMS - 1, f"only {kills} runs were killed"

        final = _apply(root, env, None)
        assert final.returncode == 0, final.stderr
        assert "No changes" in final.stderr
        # The run that converged closed the killed runs' steps: noted once, not forever.
        assert "earlier apply stopped" not in final.stderr, final.stderr

        domains = _ours(libvirt_conn)
        assert len(domains) == VMS
        assert len({d.UUIDString() for d in domains}) == VMS  # no duplicates
        for d in domains:
            assert d.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, OWNER_NS)
        assert len(_disks(storage)) == VMS
        assert _disks(storage) == seen
    finally:
        for d in _ours(libvirt_conn):
            if d.isActive():
                d.destroy()
            d.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
