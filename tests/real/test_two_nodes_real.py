"""Two nodes on qemu:///system through the CLI (two node entries pointing at the one
libvirtd, each with its own storage directory, as two hosts would): the tiny guest boots
on node a, a `nodeSelector` edit moves it — the plan says `a → b` — and on node b it
reports from inside the same SMBIOS UUID, serial and MAC, with nothing pinned in git
(issue 9: placement is planned, identity belongs to the cluster)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import tinyguest
from .test_cli_real import NS, URI, Repo, clear, vm

NAME = "mover"
DOMAIN = f"{NS}_{NAME}"


class TwoNodes(Repo):
    def __init__(self, node_root: Path, tiny_guest_dir: Path) -> None:
        super().__init__(node_root, tiny_guest_dir)
        self.stores = {n: node_root / f"two-{n}" for n in ("a", "b")}
        for d in self.stores.values():
            d.mkdir(exist_ok=True)
            tinyguest.make_world_traversable(d)
        (self.root / "cluster.yaml").write_text(yaml.safe_dump({
            "apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "c"},
            "spec": {"nodes": [{"name": n, "uri": URI, "storageDir": str(d),
                                "imageDir": str(node_root / "cli-images"),
                                "labels": {"zone": n}} for n, d in self.stores.items()]}}))
        self.env = dict(os.environ, VIRTSYNC_STATE_DIR=str(node_root / "two-state"))

    def put_on(self, zone: str) -> None:
        body = vm(NAME, run="Always", boot=True)
        body["spec"]["template"]["spec"]["nodeSelector"] = {"zone": zone}
        self.put(body)

    def report(self, zone: str, timeout: float = 90) -> tinyguest.GuestReport:
        """What the guest printed on its console on that node (virtlogd writes it into
        the node's storage directory)."""
        deadline = time.monotonic() + timeout
        while True:
            logs = list(self.stores[zone].rglob(f"{DOMAIN}*.log"))
            text = logs[0].read_text(errors="replace") if logs else ""
            if "VS-READY" in text:
                return tinyguest.parse_report(text)
            assert time.monotonic() < deadline, f"{DOMAIN}: not ready on node {zone}"
            time.sleep(0.2)


@pytest.fixture()
def two(libvirt_conn: Any, node_root: Path, tiny_guest_dir: Path) -> Iterator[TwoNodes]:
    r = TwoNodes(node_root, tiny_guest_dir)
    for f in (r.root / "vms").glob("*.yaml"):
        f.unlink()
    try:
        yield r
    finally:
        clear(libvirt_conn, r)


def test_guest_moved_to_another_node_keeps_its_identity(libvirt_conn: Any,
                                                        two: TwoNodes) -> None:
    two.put_on("a")
    r = two.virtsync("apply", str(two.root))
    assert r.returncode == 0, r.stdout + r.stderr
    on_a = two.report("a")
    assert on_a.uuid and on_a.serial and on_a.macs

    two.put_on("b")
    r = two.virtsync("plan", str(two.root), "-o", "json")
    (change,) = [c for c in json.loads(r.stdout)["changes"] if c["name"] == NAME]
    assert change["placement"] == {"node": "b", "previous_node": "a", "reason": ""}
    text = two.virtsync("plan", str(two.root), "--color", "never").stdout
    assert "placement: a → b (moves)" in text
    r = two.virtsync("apply", str(two.root), "--allow-restart")
    assert r.returncode == 0, r.stdout + r.stderr
    on_b = two.report("b")
    # From inside the guest: same SMBIOS UUID and serial, same MAC; nothing pinned in git.
    assert (on_b.uuid, on_b.serial, on_b.macs) == (on_a.uuid, on_a.serial, on_a.macs)
    assert "uuid" not in (two.root / "vms" / f"{NAME}.yaml").read_text()
    assert libvirt_conn.lookupByName(DOMAIN).isActive()
    assert two.virtsync("plan", str(two.root), "--detailed-exitcode").returncode == 0
