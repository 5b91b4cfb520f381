"""Real lane: the tiny guest boots on qemu:///system through virtsync's node code and
reports, from inside, the identity the node gave it; identity and data survive a
restart-class change; graceful stop reaches the guest's init; disks are never shared."""

from __future__ import annotations

import pytest

from node.cluster.config import parse_cluster
from node.cluster.networks import NetworkMap
from reconciler.core.model import VirtsyncError

from . import tinyguest

NAMESPACE = tinyguest.NAMESPACE
READY = r"^VS-READY"


def test_identity_and_disk_survive_a_restart_class_change(node: tinyguest.Node) -> None:
    body = tinyguest.tiny_vm(NAMESPACE, "tiny", cores=1, scratch=True, seed=True)
    first = tinyguest.launch(node, body)
    seen = tinyguest.parse_report(tinyguest.wait_console(first, READY))
    ident = first.identity
    assert seen.uuid == ident.uuid
    assert seen.serial == ident.serial
    assert seen.macs == {"eth0": ident.macs["default"]}
    assert seen.cpus == 1
    assert seen.ips == {"eth0": "10.0.2.15"}  # pod network: user-mode, masquerade-like
    data, scratch = seen.disks["vda"], seen.disks["vdb"]
    assert data.serial == ident.disk_serials["data"][:20]
    assert data.marker_state == "new" and data.marker
    assert scratch.marker_state == "new"
    # The cloud-init seed as the guest's kernel reads it from the cdrom: cidata files,
    # instance-id = firmware UUID (so cloud-init sees one instance across restarts).
    assert seen.seed == f"files=meta-data,user-data, instance-id: {ident.uuid}"

    # CPU cores is restart class: graceful stop, undefine, define again, start.
    tinyguest.graceful_stop(node, first.domain, timeout=30)
    node.conn.lookupByName(first.domain).undefine()
    body2 = tinyguest.tiny_vm(NAMESPACE, "tiny", cores=2, scratch=True, seed=True)
    second = tinyguest.launch(node, body2)
    again = tinyguest.parse_report(tinyguest.wait_console(second, READY))
    assert again.cpus == 2  # the change took effect ...
    assert (again.uuid, again.serial, again.macs) == (seen.uuid, seen.serial, seen.macs)
    assert again.disks["vda"].marker_state == "found"  # ... and the data disk kept its marker
    assert again.disks["vda"].marker == data.marker
    assert again.disks["vda"].serial == data.serial
    # emptyDisk is scratch for one incarnation: blank again, so the guest wrote a new marker.
    assert again.disks["vdb"].marker_state == "new"
    assert again.disks["vdb"].marker != scratch.marker
    assert again.seed == seen.seed
    assert {a.volume: a.action for a in second.prepared.actions} == {
        "data": "kept",
        "scratch": "recreated",
        "seed": "unchanged",
    }

    # Safety rule 6: a second VM claiming the same disk is refused while this one runs.
    thief = tinyguest.tiny_vm(NAMESPACE, "thief", claim="tiny-data")
    with pytest.raises(VirtsyncError, match=rf"in use by running domain '{NAMESPACE}_tiny'"):
        tinyguest.launch(node, thief)
    assert node.conn.lookupByName(f"{NAMESPACE}_tiny").isActive()


def test_graceful_stop_reaches_the_guest_init(node: tinyguest.Node) -> None:
    # Also a multus network mapped by the Cluster config onto libvirt's NAT network.
    net = node.conn.networkLookupByName("default")
    was_active = bool(net.isActive())
    if not was_active:
        net.create()
    node.networks = NetworkMap.from_config(parse_cluster(
        {"spec": {"networks": [{"name": "prod", "libvirtNetwork": "default"}]}}).networks)
    try:
        # A generous grace period: a 2-core CI machine under TCG can take a while to run
        # the guest's ACPI handler; "graceful" is shown by the console lines below.
        body = tinyguest.tiny_vm(NAMESPACE, "stopper", grace=90, multus=("prod",))
        inc = tinyguest.launch(node, body)
        seen = tinyguest.parse_report(tinyguest.wait_console(inc, READY))
        took = tinyguest.graceful_stop(node, inc.domain, timeout=90)
    finally:
        node.networks = NetworkMap({})
        if not was_active:
            net.destroy()
    text = tinyguest.read_console(inc)
    assert "VS-ACPI power-button" in text  # the guest's own handler ran
    assert "reboot: Power down" in text  # and the kernel powered off cleanly
    assert took < 90
    assert seen.macs == {"eth0": inc.identity.macs["default"], "eth1": inc.identity.macs["prod"]}
    assert seen.ips["eth0"] == "10.0.2.15"
    assert seen.ips["eth1"].startswith("192.168.122.")  # a lease from libvirt's dnsmasq
