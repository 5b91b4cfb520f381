"""NodeHost.scan/lookup when libvirt fails at a chosen moment (issue 14: kills surviving
mutants of node/cluster/host.py). The errors are libvirt's own — a domain really undefined
between the listing and the read, a connection really closed — only the moment is
chosen, by a thin wrapper around a real test:///default connection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from backend_helpers import TEST_URI, backend, manifest, vm_body

from node.cluster.host import NodeError, NodeHost
from reconciler.backends.libvirt import LibvirtBackend
from reconciler.core.model import ObjectKey


class Wrapped:
    """A real connection; `after_list` runs right after listAllDomains returns."""

    def __init__(self, conn: Any, after_list: Any = None) -> None:
        self._conn = conn
        self._after_list = after_list

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def isAlive(self) -> bool:
        return True

    def listAllDomains(self, flags: int = 0) -> list[Any]:
        domains = self._conn.listAllDomains(flags)
        if self._after_list:
            self._after_list()
        return domains


@pytest.fixture
def be(tmp_path: Path) -> Iterator[tuple[LibvirtBackend, Any]]:
    conn = libvirt.open(TEST_URI)
    b = backend(tmp_path)
    try:
        for name in ("a", "b"):
            b.create(manifest(vm_body(name, run_strategy="Halted")), revision="r", refs={})
        yield b, conn
    finally:
        b.close()
        conn.close()


def _host(b: LibvirtBackend) -> NodeHost:
    (host,) = b.hosts.values()
    return host


def test_domain_undefined_between_listing_and_reading_is_skipped(
        be: tuple[LibvirtBackend, Any]) -> None:
    b, conn = be
    host = _host(b)
    host._conn = Wrapped(host.conn(), lambda: conn.lookupByName("default_a").undefine())
    scan = host.scan()
    assert [r.key for r in scan.records] == [ObjectKey("VirtualMachine", "default", "b")]


def test_listing_failure_is_a_node_error(be: tuple[LibvirtBackend, Any]) -> None:
    b, _ = be
    host = _host(b)
    closed = libvirt.open(TEST_URI)
    closed.close()
    host._conn = Wrapped(closed)
    with pytest.raises(NodeError, match="listing domains failed"):
        host.scan()


def test_lookup_failure_other_than_no_domain_is_a_node_error(
        be: tuple[LibvirtBackend, Any]) -> None:
    b, _ = be
    host = _host(b)
    closed = libvirt.open(TEST_URI)
    closed.close()
    host._conn = Wrapped(closed)
    with pytest.raises(NodeError, match="looking up default_a"):
        host.lookup(ObjectKey("VirtualMachine", "default", "a"))
