"""Raw live migration between two real libvirt daemons on this machine (issue 10's
ground floor, before `virtsync migrate` exists): node A is qemu:///system, node B a second
libvirtd from tools/second_node.py. The tiny guest boots on A and is moved peer-to-peer
(`LIVE | PEER2PEER | PERSIST_DEST | UNDEFINE_SOURCE`) — over a directory both nodes see
(memory only) and with node-local disks copied (`NON_SHARED_DISK`) into a pre-created
target. From its console: the counter goes on under the same boot id with no second boot,
and the guest still sees the same SMBIOS UUID, serial, MAC and disk marker. The domain
ends active and persistent on B only. Migration time and downtime are printed."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
import pytest
import second_node

from node.storage.disks import NodeStorage

from . import liveguest, tinyguest


@dataclass(frozen=True)
class Nodes:
    a: Any  # libvirt connection to node A
    b: Any  # libvirt connection to node B
    layout: second_node.Layout


@pytest.fixture()
def nodes(libvirt_conn: Any, node_b: second_node.SecondNode) -> Iterator[Nodes]:
    conn_b = libvirt.open(node_b.layout.uri)
    try:
        yield Nodes(libvirt_conn, conn_b, node_b.layout)
    finally:
        conn_b.close()


def on_node(node: tinyguest.Node, storage_dir: Path) -> tinyguest.Node:
    """The real-lane node with its disks in `storage_dir` (images and console log
    directory stay where both daemons see them at the same path)."""
    storage_dir.mkdir(exist_ok=True)
    tinyguest.make_world_traversable(storage_dir)
    return tinyguest.Node(node.conn, NodeStorage.of(storage_dir, node.storage.image_dir),
                          node.facts, node.networks)


def boot(node: tinyguest.Node, name: str) -> tuple[tinyguest.Incarnation, tinyguest.GuestReport]:
    inc = tinyguest.launch(node, tinyguest.tiny_vm(tinyguest.NAMESPACE, name))
    liveguest.wait_check_after(inc.console, inc.offset, 0, timeout=120)
    return inc, tinyguest.parse_report(tinyguest.read_console(inc))


def move(inc: tinyguest.Incarnation, src: Any, dest: Any, dest_uri: str, *,
         flags: int = liveguest.SHARED_STORAGE_FLAGS,
         params: dict[str, Any] | None = None) -> None:
    """Migrate while watching the ticks; prints migration time, libvirt's downtime and
    the longest silence between two ticks around it (host clock)."""
    dom = src.lookupByName(inc.domain)
    with liveguest.TickWatch(inc.console, inc.offset) as watch:
        watch.wait_fresh_tick()
        t0 = time.monotonic()
        done = liveguest.migrate(dom, dest_uri, dest, flags=flags, params=params)
        before = len(liveguest.ticks(tinyguest.read_console(inc)))
        liveguest.wait_text(inc.console, inc.offset,
                            lambda t: len(liveguest.ticks(t)) >= before + 2, 30,
                            "ticks after the migration")
        gap = watch.longest_gap(t0, time.monotonic())
    print(f"\n{inc.domain}: migration {done.seconds:.2f} s (libvirt job "
          f"{done.stats['time_elapsed']} ms, downtime {done.downtime_ms} ms); longest "
          f"silence between ticks {gap:.2f} s (one every {liveguest.TICK_SECONDS} s)")


def assert_kept_running(inc: tinyguest.Incarnation, seen: tinyguest.GuestReport,
                        since_tick: int) -> None:
    """From the console: one boot, one boot id, no tick missing or repeated, and a
    VS-CHECK after `since_tick` showing the identity and disk marker of the first boot."""
    text = liveguest.wait_check_after(inc.console, inc.offset, since_tick)
    counted = liveguest.ticks(text)
    assert liveguest.boot_count(text) == 1, "the guest booted again"
    assert {t.boot for t in counted} == {counted[0].boot}, "the boot id changed"
    assert [t.n for t in counted] == list(range(1, len(counted) + 1)), "the counter restarted"
    check = [c for c in liveguest.checks(text) if int(c["n"]) > since_tick][-1]
    assert check["uuid"].lower() == seen.uuid.lower() == inc.identity.uuid.lower()
    assert check["serial"] == seen.serial
    assert check["mac.eth0"] == seen.macs["eth0"]
    assert check["disk.vda"] == seen.disks["vda"].marker != ""


def assert_only_on(name: str, here: Any, gone: Any) -> None:
    dom = here.lookupByName(name)
    assert dom.isActive() and dom.isPersistent()
    with pytest.raises(libvirt.libvirtError) as err:
        gone.lookupByName(name)
    assert err.value.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN


def last_tick(inc: tinyguest.Incarnation) -> int:
    return liveguest.ticks(tinyguest.read_console(inc))[-1].n


def test_second_node_is_another_host(nodes: Nodes) -> None:
    """Node B is a distinct libvirt host (own host UUID, own domains), reachable on TCP
    like node A; a second start reuses it and launches nothing."""
    lay = nodes.layout
    assert second_node.host_uuid(lay.uri) == lay.host_uuid != second_node.host_uuid(lay.peer_uri)
    again = second_node.start(lay.instance)
    assert again.started == () and again.peer_forwarder is None
    assert nodes.b.getURI() != nodes.a.getURI()


def test_live_migration_over_shared_storage_keeps_the_guest_running(
    nodes: Nodes, node: tinyguest.Node, node_root: Path
) -> None:
    shared = on_node(node, node_root / "shared-storage")
    inc, seen = boot(shared, "mig-shared")

    move(inc, nodes.a, nodes.b, nodes.layout.uri)
    assert_only_on(inc.domain, nodes.b, nodes.a)
    assert_kept_running(inc, seen, last_tick(inc))

    move(inc, nodes.b, nodes.a, nodes.layout.peer_uri)  # node A takes p2p too
    assert_only_on(inc.domain, nodes.a, nodes.b)
    assert_kept_running(inc, seen, last_tick(inc))


def test_live_migration_copies_node_local_disks(nodes: Nodes, node: tinyguest.Node,
                                                 node_root: Path) -> None:
    local_a, local_b = node_root / "local-a", node_root / "local-b"
    inc, seen = boot(on_node(node, local_a), "mig-local")
    (disk,) = inc.prepared.disks
    params = liveguest.copy_storage_params(nodes.a.lookupByName(inc.domain), local_a, local_b)

    move(inc, nodes.a, nodes.b, nodes.layout.uri, flags=liveguest.COPY_STORAGE_FLAGS,
         params=params)
    assert_only_on(inc.domain, nodes.b, nodes.a)
    moved = local_b / Path(disk.path).relative_to(local_a)
    assert str(moved) in nodes.b.lookupByName(inc.domain).XMLDesc(0)
    # The guest reads its marker back from B's copy (caches dropped); A's file stays
    # behind, the same content, for whoever deletes it.
    assert_kept_running(inc, seen, last_tick(inc))
    same = subprocess.run(["qemu-img", "compare", "-U", disk.path, str(moved)],
                          capture_output=True, text=True, check=False)
    assert same.returncode == 0, same.stdout + same.stderr
