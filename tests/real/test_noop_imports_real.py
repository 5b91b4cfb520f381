"""A no-op `plan` and `apply` on qemu:///system (the VMs defined, nothing to do) load none
of the modules that only a create, a stop, a migration or a saved plan needs (issue 13: a
no-op run is mostly start-up), and still report that there is nothing to do. The VMs use
what those modules serve: a containerDisk on a base image, a blank dataVolume and a
cloud-init seed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import tinyguest

NS = f"vsnoop{tinyguest.SUFFIX}"
URI = "qemu:///system"
# Imported where a VM is created (domain model, XML, base-image facts, cloud-init seeds),
# stopped, migrated or moved, where a saved plan or a git revision is read; socket: the
# lock note names the host without it; subprocess: only qemu-img and git need it (the
# repo here is no git work tree).
CREATE_STOP_MIGRATE = (
    "node.domain.model", "node.domain.xml", "node.domain.builder", "node.lifecycle.stop",
    "node.storage.cloudinit", "node.storage.base_facts", "node.cluster.migration",
    "reconciler.planning.savedplan", "reconciler.planning.plan_codec",
    "reconciler.planning.eviction", "reconciler.planning.migratable",
    "reconciler.tree.gitsource", "socket", "subprocess",
)
PROBE = f"""
import sys
from reconciler.cli import main
code = main(sys.argv[1:])
print("CODE", code)
print("LOADED", ",".join(sorted(m for m in {CREATE_STOP_MIGRATE!r} if m in sys.modules)))
"""


def vm(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"runStrategy": "Halted",
                 "dataVolumeTemplates": [{"metadata": {"name": f"{name}-data"}, "spec": {
                     "storage": {"resources": {"requests": {"storage": "8Mi"}}},
                     "source": {"blank": {}}}}],
                 "template": {"spec": {
                     "domain": {"memory": {"guest": "128Mi"}, "devices": {"disks": [
                         {"name": "root", "disk": {"bus": "virtio"}},
                         {"name": "data", "disk": {"bus": "virtio"}},
                         {"name": "seed", "cdrom": {"bus": "sata"}}]}},
                     "volumes": [
                         {"name": "root", "containerDisk": {"image": "base.qcow2"}},
                         {"name": "data", "dataVolume": {"name": f"{name}-data"}},
                         {"name": "seed", "cloudInitNoCloud": {"userData": "#cloud-config\n"}},
                     ]}}},
    }


@pytest.fixture
def repo(libvirt_conn: Any, node_root: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    root, storage, images = (node_root / f"noopimp-{d}" for d in ("repo", "storage", "images"))
    for d in (root / "vms", storage, images):
        d.mkdir(parents=True, exist_ok=True)
    tinyguest.make_world_traversable(storage)
    tinyguest.make_world_traversable(images)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(images / "base.qcow2"),
                    "16M"], check=True)
    (root / "cluster.yaml").write_text(yaml.safe_dump({
        "apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "c"},
        "spec": {"nodes": [{"name": "local", "uri": URI, "storageDir": str(storage),
                            "imageDir": str(images)}]}}))
    for name in ("alpha", "beta"):
        (root / "vms" / f"{name}.yaml").write_text(yaml.safe_dump(vm(name)))
    env = dict(os.environ, VIRTSYNC_STATE_DIR=str(node_root / "noopimp-state"))
    try:
        yield root, env
    finally:
        tinyguest.remove_domains(libvirt_conn, f"{NS}_")


def _probe(root: Path, env: dict[str, str], *argv: str) -> tuple[str, str, str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv, str(root)], capture_output=True,
                          text=True, env=env, timeout=300)
    lines = done.stdout.splitlines()
    code = next(ln for ln in lines if ln.startswith("CODE")).removeprefix("CODE ")
    loaded = next(ln for ln in lines if ln.startswith("LOADED")).removeprefix("LOADED").strip()
    return code, loaded, done.stdout + done.stderr


def test_a_noop_plan_and_apply_load_nothing_only_a_create_stop_or_migration_needs(
        repo: tuple[Path, dict[str, str]]) -> None:
    root, env = repo
    code, loaded, err = _probe(root, env, "apply", "--auto-approve")
    assert code == "0", err
    assert "node.storage.cloudinit" in loaded.split(","), loaded  # the create did need it

    code, loaded, err = _probe(root, env, "plan")
    assert code == "0", err
    assert "No changes. 3 objects are up to date." in err, err
    assert loaded == ""

    code, loaded, err = _probe(root, env, "apply", "--auto-approve")
    assert code == "0", err
    assert "No changes. Live state matches the specs." in err, err
    assert loaded == ""
