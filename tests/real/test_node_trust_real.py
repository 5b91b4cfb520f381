"""Trust boundaries on a real qemu:///system node, through the CLI (issue 8):
directories QEMU's user cannot reach are refused before any disk is made, and a hostDisk
in the node's hostDiskDir really reaches the guest while escapes are refused."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from node.storage.qemu_access import qemu_account

from . import tinyguest

NS = f"vstrust{tinyguest.SUFFIX}"
URI = "qemu:///system"


def vm(name: str, *, volumes: list[Any] | None = None, boot: bool = False) -> dict[str, Any]:
    vols: list[Any] = [{"name": "data", "dataVolume": {"name": f"{name}-data"}}, *(volumes or [])]
    domain: dict[str, Any] = {
        "cpu": {"cores": 1}, "memory": {"guest": "128Mi"},
        "devices": {"disks": [{"name": v["name"], "disk": {"bus": "virtio"}} for v in vols],
                    "interfaces": [{"name": "default", "masquerade": {}}]},
    }
    if boot:
        domain["firmware"] = tinyguest.kernel_boot()
    return {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"runStrategy": "Always" if boot else "Halted",
                 "dataVolumeTemplates": [{"metadata": {"name": f"{name}-data"}, "spec": {
                     "storage": {"resources": {"requests": {"storage": "8Mi"}}},
                     "source": {"blank": {}}}}],
                 "template": {"spec": {"terminationGracePeriodSeconds": 5, "domain": domain,
                                       "networks": [{"name": "default", "pod": {}}],
                                       "volumes": vols}}},
    }


class Repo:
    """A repo whose node directories sit wherever the test says, under `base`."""

    def __init__(self, base: Path, tiny_guest_dir: Path, **dirs: Path) -> None:
        self.root = base / "repo"
        (self.root / "vms").mkdir(parents=True)
        self.storage = dirs.get("storageDir", base / "storage")
        self.images = dirs.get("imageDir", base / "images")
        self.images.mkdir(parents=True, exist_ok=True)
        tinyguest.install_image(tiny_guest_dir, self.images)
        node: dict[str, Any] = {"name": "local", "uri": URI, "storageDir": str(self.storage),
                                "imageDir": str(self.images)}
        if "hostDiskDir" in dirs:
            node["hostDiskDir"] = str(dirs["hostDiskDir"])
        (self.root / "cluster.yaml").write_text(yaml.safe_dump({
            "apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "c"},
            "spec": {"nodes": [node]}}))
        self.env = dict(os.environ, VIRTSYNC_STATE_DIR=str(base / "state"))

    def put(self, body: dict[str, Any]) -> None:
        (self.root / "vms" / f"{body['metadata']['name']}.yaml").write_text(yaml.safe_dump(body))

    def virtsync(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "reconciler", *args], env=self.env,
                              capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture()
def base(libvirt_conn: Any) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix=f"virtsync-trust{tinyguest.SUFFIX}-", dir="/var/tmp"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        tinyguest.remove_domains(libvirt_conn, f"{NS}_")
        subprocess.run(["rm", "-rf", str(root)], check=False)


def _files(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def _ours(conn: Any) -> set[str]:
    return {d.name() for d in conn.listAllDomains() if d.name().startswith(f"{NS}_")}


# Where the blocking directory sits, and how it blocks: a 0700 temp directory above the
# storage; a root:root 0750 folder above the images (QEMU's user is in neither).
BLOCKS = {
    "storage-under-0700": ("storageDir", 0o700),
    "images-under-0750-root-group": ("imageDir", 0o750),
}


@pytest.mark.parametrize("case", sorted(BLOCKS))
def test_unreachable_directory_is_refused_before_any_disk(
        libvirt_conn: Any, base: Path, tiny_guest_dir: Path, case: str) -> None:
    who = qemu_account()
    assert who is not None and who.uid != 0, "the real lane runs QEMU as an unprivileged user"
    field, mode = BLOCKS[case]
    blocker = base / "locked"
    blocker.mkdir()
    os.chown(blocker, 0, 0)
    blocker.chmod(mode)
    inner = blocker / "inner" / ("storage" if field == "storageDir" else "images")
    inner.mkdir(parents=True)
    (blocker / "inner").chmod(0o755)
    inner.chmod(0o755)
    repo = Repo(base, tiny_guest_dir, **{field: inner})
    repo.put(vm("a"))
    r = repo.virtsync("apply", str(repo.root))
    assert r.returncode == 2, r.stderr
    assert f"QEMU's user {who.name} cannot reach the {field} {inner}: {blocker} " \
        f"(mode {mode:04o}, owner root)" in r.stderr
    assert not _files(repo.storage), "no disk may be created on an unreachable node"
    assert _ours(libvirt_conn) == set()

    blocker.chmod(mode | 0o001)  # o+x: QEMU may search it now
    r = repo.virtsync("apply", str(repo.root))
    assert r.returncode == 0, r.stderr
    assert _ours(libvirt_conn) == {f"{NS}_a"}


def test_host_disk_reaches_the_guest_and_escapes_are_refused(
        libvirt_conn: Any, base: Path, tiny_guest_dir: Path) -> None:
    hd = base / "hostdisks"
    hd.mkdir(mode=0o755)
    repo = Repo(base, tiny_guest_dir, hostDiskDir=hd)
    host = {"name": "host", "hostDisk": {"path": "a/disk.img", "type": "DiskOrCreate",
                                         "capacity": "2Mi"}}
    repo.put(vm("a", volumes=[host], boot=True))
    r = repo.virtsync("apply", str(repo.root))
    assert r.returncode == 0, r.stderr
    dom = libvirt_conn.lookupByName(f"{NS}_a")
    assert dom.isActive() and str(hd / "a" / "disk.img") in dom.XMLDesc(0)
    assert (hd / "a" / "disk.img").stat().st_size == 2 * 1024 * 1024

    # A symlink in hostDiskDir into the identity store: validate cannot see it, the node
    # refuses it, and nothing lands in the store.
    store = repo.storage / ".virtsync-identity" / NS
    (hd / "ids").symlink_to(store)
    sneaky = {"name": "host", "hostDisk": {"path": "ids/evil.json", "type": "DiskOrCreate",
                                           "capacity": "1Mi"}}
    repo.put(vm("b", volumes=[sneaky]))
    r = repo.virtsync("apply", str(repo.root))
    assert r.returncode == 1, r.stderr
    assert f"VirtualMachine/{NS}/b failed" in r.stdout and "outside" in r.stdout
    assert not (store / "evil.json").exists()

    # `..` out of hostDiskDir into another VM's claim: refused by validate, so by apply.
    claim = repo.storage / NS / "claims" / "a-data.qcow2"
    dotdot = {"name": "host", "hostDisk": {"path": f"../storage/{NS}/claims/a-data.qcow2",
                                           "type": "Disk"}}
    repo.put(vm("b", volumes=[dotdot]))
    r = repo.virtsync("validate", str(repo.root))
    assert r.returncode == 1 and "outside the nodes' hostDiskDir" in r.stdout
    before = claim.read_bytes()
    assert repo.virtsync("apply", str(repo.root)).returncode == 2
    assert claim.read_bytes() == before and f"{NS}_b" not in _ours(libvirt_conn)
