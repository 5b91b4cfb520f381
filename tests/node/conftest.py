"""Fixtures for the node tests: libvirt's test driver (fast lane) and, for tests marked
`real`, the system libvirtd with QEMU (started here when nothing answers)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from lanes import require_real_tools

sys.path.insert(0, str(Path(__file__).parent))  # domain_cases.py, shared with bench/



@pytest.fixture
def test_conn() -> Iterator[Any]:
    """A fresh test:///default connection (its state dies with the connection)."""
    conn = libvirt.open("test:///default")
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(scope="session")
def system_conn() -> Iterator[Any]:
    import libvirt_daemon as daemon

    require_real_tools()  # like tests/real: a skip, and under CI a failure
    daemons = daemon.start()
    conn = libvirt.open(daemons.uri)
    try:
        yield conn
    finally:
        conn.close()
        daemon.stop(daemons)
