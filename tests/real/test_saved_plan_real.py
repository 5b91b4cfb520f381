"""Saved plans on qemu:///system through the CLI (safety rule 15): the issue's two
reproductions with real disk files. A tampered plan file deletes nothing; the untampered
file deletes exactly this folder's removed VM and its disk."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from . import tinyguest
from .test_cli_real import vm

NS = f"vsplan{tinyguest.SUFFIX}"
URI = "qemu:///system"
DELETE = {"virtsync.io/disk-policy": "Delete"}


class Source:
    """One source folder (its own inventory) on the shared node."""

    def __init__(self, root: Path, storage: Path, images: Path, state: Path) -> None:
        self.root = root
        (root / "vms").mkdir(parents=True, exist_ok=True)
        (root / "cluster.yaml").write_text(yaml.safe_dump({
            "apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "c"},
            "spec": {"nodes": [{"name": "local", "uri": URI, "storageDir": str(storage),
                                "imageDir": str(images)}]}}))
        self.env = dict(os.environ, VIRTSYNC_STATE_DIR=str(state))

    def put(self, name: str, annotations: dict[str, str] | None = None) -> None:
        body = vm(name)
        body["metadata"]["namespace"] = NS
        if annotations:
            body["metadata"]["annotations"] = annotations
        (self.root / "vms" / f"{name}.yaml").write_text(yaml.safe_dump(body))

    def virtsync(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "reconciler", *args], env=self.env,
                              capture_output=True, text=True, timeout=300, check=False)


def disks(storage: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(storage.rglob("*.qcow2"))}


def ours(conn: Any) -> dict[str, str]:
    return {d.name(): d.XMLDesc() for d in conn.listAllDomains()
            if d.name().startswith(f"{NS}_")}


def test_tampered_saved_plans_delete_nothing(libvirt_conn: Any, node_root: Path,
                                            tiny_guest_dir: Path) -> None:
    import libvirt

    storage, images = node_root / "sp-storage", node_root / "sp-images"
    for d in (storage, images):
        d.mkdir(exist_ok=True)
        tinyguest.make_world_traversable(d)
    tinyguest.install_image(tiny_guest_dir, images)
    state = node_root / "sp-state"
    a = Source(node_root / "sp-a", storage, images, state)
    b = Source(node_root / "sp-b", storage, images, state)
    plan_file = node_root / "sp-plan.json"
    try:
        a.put("keep")
        a.put("wipe", DELETE)
        b.put("other", DELETE)
        for s in (a, b):
            r = s.virtsync("apply", str(s.root))
            assert r.returncode == 0, r.stderr
        (a.root / "vms" / "wipe.yaml").unlink()
        r = a.virtsync("plan", str(a.root), "--prune", "--out-file", str(plan_file))
        assert r.returncode == 1, r.stderr
        saved = plan_file.read_text()
        before = ours(libvirt_conn), disks(storage)
        assert {"wipe-data.qcow2", "other-data.qcow2"} <= set(before[1])

        def apply_tampered(edit: dict[str, Any], *flags: str) -> str:
            doc = json.loads(saved)
            (change,) = [c for c in doc["changes"] if c["name"] == "wipe"]
            change.update(edit)
            plan_file.write_text(json.dumps(doc))
            r = a.virtsync("apply", str(a.root), "--plan", str(plan_file), "--prune", *flags)
            assert r.returncode == 2, r.stdout + r.stderr
            assert (ours(libvirt_conn), disks(storage)) == before
            return r.stderr

        # The reproductions: data loss declared `none`; a prune aimed at the VM
        # another folder applied (with every permission given).
        err = apply_tampered({"disruption": "none"})
        assert "changes[0].disruption: the file says 'none', re-derived 'data-loss'" in err
        err = apply_tampered({"name": "other", "key": f"VirtualMachine/{NS}/other"},
                             "--allow-data-loss", "--force-stop")
        assert f"deletes VirtualMachine/{NS}/other, not in this source's inventory" in err

        # Untampered: the gates judge it, then it prunes exactly this folder's VM.
        plan_file.write_text(saved)
        r = a.virtsync("apply", str(a.root), "--plan", str(plan_file), "--prune")
        assert r.returncode == 1 and "needs --allow-data-loss" in r.stderr, r.stderr
        r = a.virtsync("apply", str(a.root), "--plan", str(plan_file), "--prune",
                       "--allow-data-loss")
        assert r.returncode == 0, r.stderr
        assert set(ours(libvirt_conn)) == {f"{NS}_keep", f"{NS}_other"}
        left = disks(storage)
        assert "wipe-data.qcow2" not in left
        assert left["other-data.qcow2"] == before[1]["other-data.qcow2"]
    finally:
        for dom in libvirt_conn.listAllDomains():
            if dom.name().startswith(f"{NS}_"):
                if dom.isActive():
                    dom.destroy()
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
