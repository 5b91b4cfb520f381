"""tools/libvirt_daemon: the /dev/kvm trap and readiness checks, without touching the real /dev/kvm."""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

import libvirt_daemon as daemon
import pytest


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a device node needs root")
def test_root_only_kvm_node_is_given_to_group_kvm(tmp_path: Path) -> None:
    fake = tmp_path / "kvm"
    os.mknod(fake, stat.S_IFCHR | 0o600, os.makedev(10, 232))
    assert daemon.tame_kvm_device(str(fake)) is True
    st = fake.stat()
    assert st.st_gid == grp.getgrnam("kvm").gr_gid
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert daemon.tame_kvm_device(str(fake)) is False  # already fine: untouched


def test_missing_or_non_device_paths_are_left_alone(tmp_path: Path) -> None:
    assert daemon.tame_kvm_device(str(tmp_path / "absent")) is False
    plain = tmp_path / "plain"
    plain.write_text("x")
    plain.chmod(0o600)
    assert daemon.tame_kvm_device(str(plain)) is False
    assert stat.S_IMODE(plain.stat().st_mode) == 0o600


def test_an_unreachable_uri_does_not_answer() -> None:
    assert daemon.answers("qemu+unix:///system?socket=/nonexistent/sock") is False
