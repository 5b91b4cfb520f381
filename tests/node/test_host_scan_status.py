"""NodeHost.scan reads every domain's run state in one batch (issue 13), not per domain:
each record must still carry its own domain's state, reason and activity, exactly as the
per-domain read (NodeHost.record, watch's path) gives them, whatever the mix and order of
running, paused and shut-off domains, and after they change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from backend_helpers import TEST_URI, backend, manifest, vm_body

from node.cluster.host import DomainRecord, NodeHost
from reconciler.backends.libvirt import LibvirtBackend


@pytest.fixture
def be(tmp_path: Path) -> Iterator[tuple[LibvirtBackend, Any]]:
    conn = libvirt.open(TEST_URI)  # keeps test:///default alive for the test
    b = backend(tmp_path)
    try:
        yield b, conn
    finally:
        b.close()
        conn.close()


def _host(b: LibvirtBackend) -> NodeHost:
    (host,) = b.hosts.values()
    return host


def _seen(rec: DomainRecord) -> tuple[int, int, bool]:
    return rec.state, rec.reason, rec.active


def _one_by_one(host: NodeHost, conn: Any, names: list[str]) -> dict[str, tuple[int, int, bool]]:
    out = {}
    for name in names:
        rec = host.record(conn.lookupByName(name))
        out[rec.domain] = _seen(rec)
    return out


def _batched(host: NodeHost) -> dict[str, tuple[int, int, bool]]:
    return {r.domain: _seen(r) for r in host.scan().records}


def test_scan_gives_each_domain_its_own_state_as_the_per_domain_read_does(
        be: tuple[LibvirtBackend, Any]) -> None:
    b, conn = be
    host = _host(b)
    # Created in an order that is neither the listing's nor the states' (z first).
    for name, strategy in (("z-run", "Always"), ("a-off", "Halted"), ("m-paused", "Always"),
                           ("b-off", "Halted")):
        b.create(manifest(vm_body(name, run_strategy=strategy)), revision="r", refs={})
    conn.lookupByName("default_m-paused").suspend()
    names = ["default_a-off", "default_b-off", "default_m-paused", "default_z-run"]

    seen = _batched(host)
    assert seen == _one_by_one(host, conn, names)
    assert seen["default_z-run"] == (libvirt.VIR_DOMAIN_RUNNING, 1, True)
    assert seen["default_m-paused"][0] == libvirt.VIR_DOMAIN_PAUSED
    assert seen["default_m-paused"][2] is True
    assert seen["default_a-off"][0] == libvirt.VIR_DOMAIN_SHUTOFF
    assert seen["default_a-off"][2] is False

    # Change every state the other way round: the next scan must follow, not remember.
    conn.lookupByName("default_z-run").destroy()
    conn.lookupByName("default_m-paused").resume()
    conn.lookupByName("default_a-off").create()
    again = _batched(host)
    assert again == _one_by_one(host, conn, names)
    assert again["default_z-run"][0] == libvirt.VIR_DOMAIN_SHUTOFF
    assert again["default_z-run"][2] is False
    assert again["default_a-off"][:1] == (libvirt.VIR_DOMAIN_RUNNING,)
    assert again["default_a-off"][2] is True
    assert again["default_m-paused"][0] == libvirt.VIR_DOMAIN_RUNNING
    assert again["default_b-off"] == seen["default_b-off"]
