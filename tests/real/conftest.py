"""Real-QEMU lane set-up: build the tiny guest, start libvirtd + virtlogd ourselves (no
systemd), make a node (storage + image directories QEMU can read), and clean up.

Tests here are marked `real`. They skip only when libvirt's daemons or QEMU are not
installed at all (scripts/setup.sh installs them; CI runs this lane). Any other failure
to start is an error, not a skip.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import libvirt_daemon as daemon
import pytest
import second_node
from lanes import require_real_tools

from node.domain.model import NodeFacts
from node.storage.disks import NodeStorage

from . import tinyguest

NAMESPACE = tinyguest.NAMESPACE
DOMAIN_PREFIX = f"{NAMESPACE}_"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.real)


@pytest.fixture(scope="session")
def tiny_guest_dir() -> Path:
    return tinyguest.build_tiny_guest()


@pytest.fixture(scope="session")
def libvirt_conn() -> Iterator[object]:
    require_real_tools()  # a skip; under CI a failure (tests/ci_strict.py)
    import libvirt

    started = daemon.start(daemon.DEFAULT_URI)
    conn = libvirt.open(daemon.DEFAULT_URI)
    try:
        yield conn
    finally:
        tinyguest.remove_domains(conn, DOMAIN_PREFIX)
        conn.close()
        daemon.stop(started)


@pytest.fixture(scope="session")
def node_b(libvirt_conn: object) -> Iterator[second_node.SecondNode]:
    """A second libvirt node (tools/second_node.py), this run's own instance; started on
    first use, stopped at the end of the session if this session started it."""
    import libvirt

    b = second_node.start(tinyguest.SUFFIX)
    try:
        yield b
    finally:
        conn = libvirt.open(b.layout.uri)
        tinyguest.remove_domains(conn, DOMAIN_PREFIX)
        conn.close()
        second_node.stop(b)


@pytest.fixture(scope="session")
def node_root() -> Iterator[Path]:
    # Not under pytest's tmp_path: that is 0700 and QEMU (user libvirt-qemu) must read here.
    root = Path(tempfile.mkdtemp(prefix="virtsync-real-", dir="/var/tmp"))
    tinyguest.make_world_traversable(root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def node(libvirt_conn: object, node_root: Path, tiny_guest_dir: Path) -> tinyguest.Node:
    storage_dir, image_dir, console_dir = (node_root / d for d in ("storage", "images", "console"))
    for d in (storage_dir, image_dir, console_dir):
        d.mkdir(exist_ok=True)
        tinyguest.make_world_traversable(d)
    tinyguest.install_image(tiny_guest_dir, image_dir)
    storage = NodeStorage.of(storage_dir, image_dir)
    facts = NodeFacts(name="local", domain_type="qemu", arch="x86_64", machine="q35",
                      console_log_dir=str(console_dir))  # fmt: skip
    n = tinyguest.Node(libvirt_conn, storage, facts)
    if daemon.cpu_has_virtualization():
        n.facts = NodeFacts(name="local", domain_type=tinyguest.probe_kvm(n, NAMESPACE),
                            arch="x86_64", machine="q35", console_log_dir=str(console_dir))  # fmt: skip
    return n
