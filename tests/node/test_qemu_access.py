"""Which directory keeps QEMU's user from the node's disks (pure parts and mode bits)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.storage.qemu_access import (
    DEFAULT_USER,
    Account,
    blocking_dir,
    configured_user,
    describe_blocks,
    is_local_system,
)

QEMU = Account("qemu-test", 64123, frozenset({64123, 64124}))


@pytest.fixture()
def open_dir() -> Iterator[Path]:
    """A directory every user can reach (pytest's own tmp_path sits under a 0700 one)."""
    root = Path(tempfile.mkdtemp(prefix="virtsync-qa-", dir="/var/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root)


@pytest.mark.parametrize(("text", "user"), [
    (None, DEFAULT_USER),
    ('#user = "qemu"\n', DEFAULT_USER),
    ('user = "qemu"\n', "qemu"),
    ('  user="+107"\ngroup = "kvm"\n', "+107"),
    ('user = "a"\nuser = "b"\n', "b"),
])
def test_configured_user(text: str | None, user: str) -> None:
    assert configured_user(text) == user


@pytest.mark.parametrize(("uri", "local"), [
    ("qemu:///system", True), ("qemu+unix:///system", True), ("qemu:///session", False),
    ("qemu+ssh://host/system", False), ("test:///default", False),
])
def test_only_local_system_nodes_are_checked(uri: str, local: bool) -> None:
    assert is_local_system(uri) is local


@pytest.mark.parametrize(("mode", "gid", "blocked"), [
    (0o700, 0, True), (0o750, 0, True), (0o750, 64124, False), (0o701, 0, False),
    (0o711, 0, False),
])
def test_blocking_dir_reads_the_mode_bits(open_dir: Path, mode: int, gid: int,
                                          blocked: bool) -> None:
    parent = open_dir / "parent"
    inner = parent / "a" / "storage"
    inner.mkdir(parents=True)
    os.chown(parent, 0, gid)
    parent.chmod(mode)
    found = blocking_dir(inner, QEMU)
    assert (found[0] if found else None) == (parent if blocked else None)
    text = describe_blocks([("storageDir", str(inner))], QEMU)
    assert bool(text) is blocked
    if blocked:
        assert f"{parent} (mode {mode:04o}, owner root)" in text[0]


def test_the_directory_itself_and_missing_parts(open_dir: Path, tmp_path: Path) -> None:
    own = open_dir / "storage"
    own.mkdir(mode=0o700)
    own.chmod(0o700)
    assert blocking_dir(own, QEMU) == (own, own.stat())
    # Not there yet: virtsync creates it later; only the existing part is judged.
    assert blocking_dir(open_dir / "later" / "storage", QEMU) is None
    # pytest's tmp_path is under a 0700 folder: exactly what a node must not use.
    assert blocking_dir(tmp_path, QEMU) is not None
