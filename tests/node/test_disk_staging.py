"""Disk files made ahead for a batch of creates (issue 13, node.storage.staging), on the
libvirt backend with the test driver and real `qemu-img`: a create takes a file made
ahead only while what it was made from is unchanged, and what no create took goes with
the backend (through the CLI: tests/e2e/test_apply_staged.py)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
import yaml
from backend_helpers import TEST_URI, backend, manifest
from e2e.test_apply_testdriver import vm

from node.storage import staging
from reconciler.backends.base import BackendError


@pytest.fixture
def conn() -> Iterator[Any]:
    c = libvirt.open(TEST_URI)
    yield c
    for dom in c.listAllDomains():
        if dom.name().startswith("e2e_"):
            dom.undefine()
    c.close()


def test_a_batch_cut_short_leaves_nothing_made_ahead(
        conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The creates that never ran (a stop, a crash before them): their files made
    ahead go with the backend, and so do the folders only the pool made."""
    monkeypatch.setattr(staging, "WORKERS", 2)
    b = backend(tmp_path)
    storage = Path(b.hosts["n1"].config.storage_dir)
    vms = [manifest(yaml.safe_load(yaml.safe_dump(vm(n, run="Halted"))))
           for n in ("one", "two", "three")]
    refs = {m.key: m for m in vms}
    try:
        b.prepare_creates([(m, "n1") for m in vms], refs)
        b.create(vms[0], revision="r1", refs=refs, node="n1")
    finally:
        b.close()
    left = sorted(str(p.relative_to(storage)) for p in storage.rglob("*")
                  if ".virtsync-identity" not in p.parts)
    assert left == [".virtsync-console", "e2e", "e2e/claims", "e2e/claims/one-data.qcow2", "e2e/vms",
                    "e2e/vms/one", "e2e/vms/one/empty-scratch.qcow2"]


@pytest.mark.parametrize("change", ["base replaced", "temp file gone"])
def test_a_file_made_ahead_is_not_taken_once_its_inputs_changed(
        conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    """The overlay is made from the base image as it is when its step runs: one made
    ahead on a base replaced since (another size) is made again; so is one whose temp
    file went (a sweep)."""
    monkeypatch.setattr(staging, "WORKERS", 2)
    b = backend(tmp_path)
    host = b.hosts["n1"]
    base = Path(host.config.image_dir) / "base.qcow2"
    base.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "8M"], check=True)
    body = vm("ahead", run="Halted")
    body["spec"]["template"]["spec"]["volumes"][0] = {
        "name": "scratch", "containerDisk": {"image": "base.qcow2"}}
    m = manifest(yaml.safe_load(yaml.safe_dump(body)))
    overlay = Path(host.config.storage_dir) / "e2e" / "vms" / "ahead" / \
        "containerdisk-scratch.qcow2"
    try:
        b.prepare_creates([(m, "n1")], {m.key: m})
        made = [f.result() for f in (s.future for s in host.staged._made.values())]
        if change == "base replaced":
            base.unlink()
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "16M"],
                           check=True)
            wanted = 16 * 2**20
        else:
            for tmp in made:
                Path(tmp).unlink()
            wanted = 8 * 2**20
        b.create(m, revision="r1", refs={m.key: m}, node="n1")
    finally:
        b.close()
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(overlay)],
                                     check=True, capture_output=True, text=True).stdout)
    assert info["virtual-size"] == wanted
    assert not [p for p in overlay.parent.parent.parent.rglob(".*") if p.is_file()]


def test_a_create_refused_before_its_disks_leaves_none_made_ahead(
        conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Right when its step ends, not only when the backend closes (a watch keeps it
    open): its files made ahead and the folders only the pool made are gone."""
    monkeypatch.setattr(staging, "WORKERS", 2)
    b = backend(tmp_path)
    storage = Path(b.hosts["n1"].config.storage_dir)
    taken = manifest(yaml.safe_load(yaml.safe_dump(vm("taken", run="Halted"))))
    try:
        b.prepare_creates([(taken, "n1")], {taken.key: taken})
        conn.defineXML("<domain type='test'><name>e2e_taken</name><memory>65536</memory>"
                       "<os><type>hvm</type></os></domain>")  # not virtsync's (rule 3)
        with pytest.raises(BackendError, match="owner marker"):
            b.create(taken, revision="r1", refs={taken.key: taken}, node="n1")
        left = sorted(str(p.relative_to(storage)) for p in storage.rglob("*")
                      if ".virtsync-identity" not in p.parts)
    finally:
        b.close()
    assert left == []


def test_only_the_next_few_creations_are_made_ahead(
        conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash leaves at most WINDOW temp files of a batch, however large; each create
    that takes its files lets the next ones start."""
    monkeypatch.setattr(staging, "WORKERS", 2)
    b = backend(tmp_path)
    host = b.hosts["n1"]
    storage = Path(host.config.storage_dir)
    vms = [manifest(yaml.safe_load(yaml.safe_dump(vm(f"w{i}", run="Halted"))))
           for i in range(10)]  # 20 creations
    refs = {m.key: m for m in vms}

    def temps() -> int:
        for made in list(host.staged._made.values()):
            made.future.exception()  # wait until it ran
        return len([p for p in storage.rglob(".*.qcow2.*") if p.is_file()])

    try:
        b.prepare_creates([(m, "n1") for m in vms], refs)
        assert temps() == staging.WINDOW
        b.create(vms[0], revision="r1", refs=refs, node="n1")
        assert temps() == staging.WINDOW  # its two taken, the next two started
        for m in vms[1:]:
            b.create(m, revision="r1", refs=refs, node="n1")
        assert temps() == 0
    finally:
        b.close()
    assert len(list(storage.rglob("*.qcow2"))) == 20
