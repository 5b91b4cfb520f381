"""`virtsync migrate` through the CLI between two real libvirt daemons (issue 10): the
tiny guest boots on node A (qemu:///system, reached by node B through its TCP forwarder,
`migrationUri`) via `virtsync apply`, `virtsync migrate ns/name --to b --wait` moves it to
node B (tools/second_node.py). From its console: one boot, the counter goes on under the
same boot id, and VS-CHECK shows the same SMBIOS UUID, serial, MAC and disk marker. The
plan afterwards is empty (placement is sticky) and `status` says node b. Shared storage
moves memory only; node-local disks are copied (allowBlockMigration) and A's copy is
removed after success (rule 13: the VM no longer uses it)."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
import second_node
import yaml

from . import liveguest, tinyguest
from .test_cli_real import NS, URI, Repo, clear, vm

NAME = "hopper"
KEY = f"{NS}/{NAME}"
DOMAIN = f"{NS}_{NAME}"


class MigRepo(Repo):
    """A repo whose Cluster lists node A (qemu:///system) and node B (its TCP URI)."""

    def __init__(self, node_root: Path, tiny_guest_dir: Path, layout: second_node.Layout,
                 *, shared: bool) -> None:
        super().__init__(node_root, tiny_guest_dir, prefix="mig")
        kind = "shared" if shared else "local"
        self.stores = {n: node_root / (f"mig-{kind}" if shared else f"mig-{kind}-{n}")
                       for n in ("a", "b", "c")}
        for d in self.stores.values():
            d.mkdir(exist_ok=True)
            tinyguest.make_world_traversable(d)
        nodes = [{"name": n, "uri": uri, "migrationUri": peer, "storageDir": str(self.stores[n]),
                  "imageDir": str(node_root / "mig-images"), "sharedStorage": shared,
                  "labels": {"zone": n}}
                 for n, uri, peer in (("a", URI, layout.peer_uri),
                                      ("b", layout.uri, layout.uri),
                                      # node B's daemon, but unreachable for migration
                                      ("c", layout.uri, _closed_port_uri()))]
        spec: dict[str, Any] = {"nodes": nodes}
        if not shared:
            spec["migration"] = {"allowBlockMigration": True}
        self.cluster = {"apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster",
                        "metadata": {"name": "c"}, "spec": spec}
        self.write_cluster()
        self.env = dict(os.environ, VIRTSYNC_STATE_DIR=str(node_root / f"mig-state-{kind}"))

    def write_cluster(self) -> None:
        (self.root / "cluster.yaml").write_text(yaml.safe_dump(self.cluster))

    def put_on(self, zone: str | None) -> None:
        body = vm(NAME, run="Always", boot=True)
        if zone is not None:
            body["spec"]["template"]["spec"]["nodeSelector"] = {"zone": zone}
        self.put(body)

    def console_text(self) -> str:
        """The guest's whole console: the log lives in the node's storage directory, so a
        node-local move continues it in B's file (A's, then B's; one file when shared)."""
        logs = dict.fromkeys(p for n in ("a", "b")
                             for p in self.stores[n].rglob(f"{DOMAIN}*.log"))
        return "".join(p.read_text(errors="replace") for p in logs).replace("\r", "")

    def wait_check_after(self, tick: int, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.console_text()
            if any(int(c.get("n", 0)) > tick for c in liveguest.checks(text)):
                return text
            assert time.monotonic() < deadline, f"no VS-CHECK after tick {tick}: {text[-600:]}"
            time.sleep(0.1)

    def last_tick(self) -> int:
        return liveguest.ticks(self.console_text())[-1].n


def _closed_port_uri() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"qemu+tcp://127.0.0.1:{port}/system"  # nothing listens there any more


@pytest.fixture()
def conn_b(node_b: second_node.SecondNode) -> Iterator[Any]:
    c = libvirt.open(node_b.layout.uri)
    yield c
    c.close()


def _cleanup(a: Any, b: Any, repo: Repo) -> None:
    clear(a, repo)
    for d in b.listAllDomains():
        if d.name().startswith(f"{NS}_"):
            if d.isActive():
                d.destroy()
            d.undefine()


def _boot_on_a(repo: MigRepo) -> tinyguest.GuestReport:
    """No selector: placement takes the first node, a, and later keeps the VM wherever
    it runs (sticky)."""
    repo.put_on(None)
    r = repo.virtsync("apply", str(repo.root))
    assert r.returncode == 0, r.stdout + r.stderr
    assert _status_node(repo) == "a"
    return tinyguest.parse_report(repo.wait_check_after(0, timeout=120))


def _assert_kept_running(repo: MigRepo, seen: tinyguest.GuestReport, since: int) -> None:
    """One boot, one boot id, an unbroken counter, and a VS-CHECK after `since` with the
    identity and disk marker of the first boot (rule 17)."""
    text = repo.wait_check_after(since)
    counted = liveguest.ticks(text)
    assert liveguest.boot_count(text) == 1, "the guest booted again"
    assert {t.boot for t in counted} == {counted[0].boot}, "the boot id changed"
    assert [t.n for t in counted] == list(range(1, len(counted) + 1)), "the counter restarted"
    check = [c for c in liveguest.checks(text) if int(c["n"]) > since][-1]
    assert check["uuid"].lower() == seen.uuid.lower()
    assert check["serial"] == seen.serial
    assert check["mac.eth0"] == seen.macs["eth0"]
    assert check["disk.vda"] == seen.disks["vda"].marker != ""


def _only_on(name: str, here: Any, gone: Any) -> None:
    dom = here.lookupByName(name)
    assert dom.isActive() and dom.isPersistent()
    with pytest.raises(libvirt.libvirtError):
        gone.lookupByName(name)


def _status_node(repo: Repo) -> str:
    r = repo.virtsync("status", str(repo.root), "-o", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads(r.stdout)
    rows = rows if isinstance(rows, list) else rows.get("vms", rows.get("items", []))
    (row,) = [x for x in rows if x.get("name") == NAME]
    return str(row["node"])


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "node-local"])
def test_virtsync_migrate_keeps_the_guest_running(libvirt_conn: Any, conn_b: Any,
                                                  node_b: second_node.SecondNode,
                                                  node_root: Path, tiny_guest_dir: Path,
                                                  shared: bool) -> None:
    repo = MigRepo(node_root, tiny_guest_dir, node_b.layout, shared=shared)
    _cleanup(libvirt_conn, conn_b, repo)
    try:
        seen = _boot_on_a(repo)
        disks_a = set(repo.stores["a"].rglob("*.qcow2"))
        if not shared:
            _failed_migration_leaves_the_guest_on_a(repo, libvirt_conn, seen)
        r = repo.virtsync("migrate", KEY, "--path", str(repo.root), "--to", "b", "--wait")
        assert r.returncode == 0, r.stdout + r.stderr
        print("\n" + r.stdout.strip())
        assert re.search(r"migrated a → b in [\d.]+ s "
                         r"\((LiveMigration|BlockMigration), downtime \d+ ms\)", r.stdout), r.stdout
        _only_on(DOMAIN, conn_b, libvirt_conn)
        _assert_kept_running(repo, seen, repo.last_tick())
        if not shared:
            # Rule 13: node A's copies are no longer used by anything: removed.
            assert disks_a and not any(p.exists() for p in disks_a), disks_a
            assert list(repo.stores["b"].rglob("*.qcow2")), "no copy on node b"
        r = repo.virtsync("plan", str(repo.root), "--detailed-exitcode")
        assert r.returncode == 0, r.stdout + r.stderr  # sticky: the VM stays on b
        assert _status_node(repo) == "b"
        if shared:
            _plan_driven_move_back(repo, libvirt_conn, conn_b, seen)
            _killed_mid_migration(repo, libvirt_conn, conn_b, seen)
    finally:
        _cleanup(libvirt_conn, conn_b, repo)


def _failed_migration_leaves_the_guest_on_a(repo: MigRepo, a: Any,
                                            seen: tinyguest.GuestReport) -> None:
    """Node c's migration URI is a closed port: the migration fails, the guest keeps
    running on a (counter unbroken), and the target files virtsync created are gone."""
    since = repo.last_tick()
    r = repo.virtsync("migrate", KEY, "--path", str(repo.root), "--to", "c", "--wait")
    assert r.returncode != 0, r.stdout + r.stderr
    assert "keeps running on the source" in r.stderr, r.stderr
    assert a.lookupByName(DOMAIN).isActive()
    _assert_kept_running(repo, seen, since)
    assert not [p for p in repo.stores["c"].rglob("*") if p.is_file()
                and p.suffix in (".qcow2", ".part")], "target files left on node c"
    assert all(p.exists() for p in repo.stores["a"].rglob("*.qcow2"))
    assert _status_node(repo) == "a"


def _plan_driven_move_back(repo: MigRepo, a: Any, b: Any,
                           seen: tinyguest.GuestReport) -> None:
    """A nodeSelector edit in git: the plan says migrate b → a (class live) and a plain
    `apply` (no --allow-restart) moves the running guest, node B → node A's forwarder."""
    repo.put_on("a")
    r = repo.virtsync("plan", str(repo.root), "-o", "json")
    (change,) = [c for c in json.loads(r.stdout)["changes"] if c["name"] == NAME]
    assert "migrate" in change["actions"] and change["disruption"] == "live", change
    text = repo.virtsync("plan", str(repo.root), "--color", "never").stdout
    assert "b → a" in text, text
    since = repo.last_tick()
    r = repo.virtsync("apply", str(repo.root))
    assert r.returncode == 0, r.stdout + r.stderr
    _only_on(DOMAIN, a, b)
    _assert_kept_running(repo, seen, since)
    assert repo.virtsync("plan", str(repo.root), "--detailed-exitcode").returncode == 0


def _killed_mid_migration(repo: MigRepo, a: Any, b: Any, seen: tinyguest.GuestReport) -> None:
    """kill -9 of `virtsync migrate --wait` once libvirt's migration job runs: the
    source daemon drives a peer-to-peer migration, so it ends without the client; then
    exactly one active domain on one node, the disk intact, and the plan converges."""
    repo.put_on(None)  # no selector: b is a valid target (apply afterwards writes this)
    since = repo.last_tick()
    proc = repo.start("migrate", KEY, "--path", str(repo.root), "--to", "b", "--wait")
    dom = a.lookupByName(DOMAIN)
    deadline = time.monotonic() + 60
    while dom.jobStats(0).get("type", 0) == libvirt.VIR_DOMAIN_JOB_NONE:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no migration job on node a"
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    while True:  # the daemons settle: the job ends on a, with or without the domain
        try:
            if a.lookupByName(DOMAIN).jobStats(0).get("type", 0) == 0:
                break
        except libvirt.libvirtError:
            break  # undefined on a: it went to b
        assert time.monotonic() < deadline, "the migration job never ended"
        time.sleep(0.1)
    active = [n for n, c in (("a", a), ("b", b)) if DOMAIN in
              {d.name() for d in c.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)}]
    defined = [n for n, c in (("a", a), ("b", b)) if DOMAIN in
               {d.name() for d in c.listAllDomains(0)}]
    print(f"\nkilled mid-migration: the domain is active on {active}, defined on {defined}")
    assert len(active) == 1 and defined == active
    _assert_kept_running(repo, seen, since)
    r = repo.virtsync("apply", str(repo.root))
    assert r.returncode == 0, r.stdout + r.stderr
    assert repo.virtsync("plan", str(repo.root), "--detailed-exitcode").returncode == 0
    assert _status_node(repo) == active[0]
