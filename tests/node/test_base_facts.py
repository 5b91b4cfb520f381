"""Issue 13: a containerDisk base image's facts (format probe, backing-chain check) are
worked out once per image, and worked out again as soon as any file of its chain
changes, so the memo never lets an unsafe chain through (safety rule 9 / 14 confinement).

qemu-img is the real one, behind a shim on PATH that logs each call."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from node.identity.node_store import Identity
from node.storage.disks import NodeStorage, prepare_disks
from node.storage.paths import UnsafePath
from reconciler.core.vmspec import VmSpec

IDENT = Identity(uuid="5e2f3a52-7d0c-4f1e-9a57-0d6b1c2e3f40", serial="0123456789ABCDEF0123",
                 macs={}, disk_serials={"root": "SERIALROOT"})


@pytest.fixture
def storage(tmp_path: Path) -> NodeStorage:
    (tmp_path / "storage").mkdir()
    (tmp_path / "images").mkdir()
    return NodeStorage.of(tmp_path / "storage", tmp_path / "images")


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A log of every qemu-img argv (one line each), the real qemu-img doing the work."""
    real, log, shim = shutil.which("qemu-img"), tmp_path / "qemu-img.log", tmp_path / "bin"
    assert real is not None
    shim.mkdir()
    (shim / "qemu-img").write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {real} "$@"\n')
    (shim / "qemu-img").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    log.touch()
    return log


def img(*args: Any) -> None:
    subprocess.run(["qemu-img", "create", "-q", *map(str, args)], check=True)


def vm(name: str, image: str) -> VmSpec:
    template = {"domain": {"memory": {"guest": "128Mi"},
                           "devices": {"disks": [{"name": "root", "disk": {}}]}},
                "volumes": [{"name": "root", "containerDisk": {"image": image}}]}
    body = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": "ns1"},
            "spec": {"runStrategy": "Always", "template": {"spec": template}}}
    return VmSpec.from_body("ns1", name, body)


def info_calls(log: Path, path: Path) -> int:
    return sum(1 for line in log.read_text().splitlines()
               if line.startswith("info") and line.endswith(str(path)))


def test_base_image_facts_are_worked_out_once_per_image(storage: NodeStorage,
                                                         calls: Path) -> None:
    a, b = storage.image_dir / "a.qcow2", storage.image_dir / "b.img"
    img("-f", "qcow2", a, "8M")
    img("-f", "raw", b, "8M")
    for name, image in (("vm1", "a.qcow2"), ("vm2", "b.img"), ("vm3", "a.qcow2"),
                        ("vm4", "a.qcow2")):
        assert prepare_disks(vm(name, image), IDENT, storage).actions[0].action == "created"
    assert (info_calls(calls, a), info_calls(calls, b)) == (1, 1)


def test_a_changed_base_is_checked_again(storage: NodeStorage, calls: Path,
                                         tmp_path: Path) -> None:
    base = storage.image_dir / "base.qcow2"
    img("-f", "qcow2", base, "8M")
    prepare_disks(vm("vm1", "base.qcow2"), IDENT, storage)
    img("-f", "raw", tmp_path / "host-secret", "1M")
    subprocess.run(["qemu-img", "rebase", "-q", "-u", "-f", "qcow2", "-b",
                    str(tmp_path / "host-secret"), "-F", "raw", str(base)], check=True)
    with pytest.raises(UnsafePath, match="host-secret is outside"):
        prepare_disks(vm("vm2", "base.qcow2"), IDENT, storage)


def test_a_changed_lower_level_of_the_base_is_checked_again(storage: NodeStorage,
                                                             calls: Path,
                                                             tmp_path: Path) -> None:
    # The top file stays byte-for-byte the same; only the level under it is swapped.
    lower, top = storage.image_dir / "lower.qcow2", storage.image_dir / "top.qcow2"
    img("-f", "qcow2", lower, "8M")
    img("-f", "qcow2", "-b", lower, "-F", "qcow2", top)
    assert prepare_disks(vm("vm1", "top.qcow2"), IDENT, storage).actions[0].action == "created"
    img("-f", "raw", tmp_path / "host-secret", "8M")
    swap = storage.image_dir / "swap.tmp"
    img("-f", "qcow2", "-b", tmp_path / "host-secret", "-F", "raw", swap)
    os.replace(swap, lower)
    with pytest.raises(UnsafePath, match="host-secret is outside"):
        prepare_disks(vm("vm2", "top.qcow2"), IDENT, storage)
