"""Disk files made ahead for a batch of creates (issue 13, node.storage.staging), through
the CLI on the test driver with real `qemu-img`: the same batch applied with the pool
and without it (serially, as before) ends with the same exit code, output, journal,
domains and files, when some of its creates fail at, before and between their disk
creations (rules 7 and 17: a failed create leaves what it left before); nothing made
ahead and never taken is left behind."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from e2e.test_apply_testdriver import Tree, conn, run, vm
from node.storage import staging
from reconciler.backends.libvirt import LibvirtBackend
from reconciler.execute.journal import read_entries

__all__ = ["conn"]  # fixture used below

PREPARE = LibvirtBackend.prepare_creates
TEMP = re.compile(r"\.[a-z0-9.-]+\.qcow2\.[a-z0-9_]{8}")


def _batch(tree: Tree) -> None:
    """Six new VMs: three fine, one whose claim qemu-img refuses (after its scratch disk
    was made and its claims folder), one on a missing image, one whose domain name an unmarked domain takes
    once the batch started (refused before any disk), and one overlay on a base image."""
    for name in ("alpha", "charlie", "echo"):
        tree.put(vm(name, run="Halted"))
    huge = vm("bravo", run="Halted")
    huge["spec"]["dataVolumeTemplates"][0]["spec"]["storage"]["resources"]["requests"][
        "storage"] = "1Ei"  # too large for qcow2: `qemu-img create` itself fails
    huge["metadata"]["namespace"] = "big"  # its claims folder: made for it alone
    tree.put(huge)
    for name, image in (("delta", "nowhere.qcow2"), ("golf", "base.qcow2")):
        body = vm(name, run="Halted")
        body["spec"]["template"]["spec"]["volumes"][0] = {
            "name": "scratch", "containerDisk": {"image": image}}
        tree.put(body)
    tree.put(vm("foxtrot", run="Halted"))


def _applied(root: Path, conn: Any, monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str], workers: int) -> dict[str, Any]:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(root / "state"))
    monkeypatch.setattr(staging, "WORKERS", workers)
    tree = Tree(root / "repo", root / "storage")
    (root / "images").mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(root / "images" / "base.qcow2"),
                    "8M"], check=True)
    _batch(tree)
    for dom in conn.listAllDomains():
        if dom.name().startswith("e2e_"):
            dom.undefine()
    def racing(self: LibvirtBackend, *args: Any) -> None:
        PREPARE(self, *args)  # the batch is started; then another tool takes a name
        conn.defineXML("<domain type='test'><name>e2e_foxtrot</name><memory>65536</memory>"
                       "<os><type>hvm</type></os></domain>")  # not virtsync's (rule 3)

    monkeypatch.setattr(LibvirtBackend, "prepare_creates", racing)
    code = run("apply", str(tree.root), "--auto-approve")
    out, err = capsys.readouterr()
    (journal,) = (root / "state" / "journal").glob("*.jsonl")

    def same(text: str) -> str:
        return TEMP.sub("TEMP", text.replace(str(root), "ROOT"))

    sizes = {}
    for p in sorted((root / "storage").rglob("*")):
        if p.is_file() and p.suffix == ".qcow2":
            info = json.loads(subprocess.run(
                ["qemu-img", "info", "--output=json", "-U", str(p)], check=True,
                capture_output=True, text=True).stdout)
            sizes[str(p.relative_to(root))] = (info["virtual-size"], same(
                info.get("backing-filename", "")))
    return {
        "code": code, "out": same(out), "err": same(err),
        "journal": [(e.seq, e.phase, e.action, str(e.key), same(e.detail), e.batch)
                    for e in read_entries(journal)],
        "domains": sorted(d.name() for d in conn.listAllDomains()
                          if d.name().startswith("e2e_")),
        "paths": sorted(str(p.relative_to(root)) for p in (root / "storage").rglob("*")
                        if ".virtsync-identity" not in p.parts),
        "disks": sizes,
    }


def test_a_batch_with_failing_creates_ends_as_a_serial_one(
        conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    serial = _applied(tmp_path / "serial", conn, monkeypatch, capsys, workers=0)
    ahead = _applied(tmp_path / "ahead", conn, monkeypatch, capsys, workers=2)
    assert ahead == serial
    # The case is what it claims: three refused at different points, the rest created.
    assert serial["code"] == 1
    failed = {k for _s, phase, _a, k, _d, _b in serial["journal"] if phase == "failed"}
    assert failed == {"VirtualMachine/big/bravo", "VirtualMachine/e2e/delta",
                      "VirtualMachine/e2e/foxtrot"}
    assert "too large" in serial["out"] + serial["err"]
    assert "storage/big/vms/bravo/empty-scratch.qcow2" in serial["paths"]  # made first
    assert "storage/big/claims" in serial["paths"]  # made, then qemu-img failed
    assert not any(p.startswith(("storage/e2e/vms/delta", "storage/e2e/vms/foxtrot"))
                   for p in serial["paths"])
    assert serial["disks"]["storage/e2e/vms/golf/containerdisk-scratch.qcow2"] == (
        8 * 2**20, "ROOT/images/base.qcow2")
    assert not [p for p in ahead["paths"] if TEMP.search(p)]  # nothing made ahead is left
