"""tools/second_node.py and tools/tcp_forward.py without a second daemon: the layout every
instance gets (own directories, own ports, never the system daemon's), the configuration
node B inherits, and the forwarder that puts node A on TCP for root clients only."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
from pathlib import Path

import libvirt_daemon as daemon
import pytest
import second_node
import tcp_forward


def test_default_node_uses_libvirts_ports_and_documented_dirs(tmp_path: Path) -> None:
    lay = second_node.layout("", base=tmp_path)
    assert (lay.peer_uri, lay.uri) == ("qemu+tcp://127.0.0.1:16509/system",
                                       "qemu+tcp://127.0.0.1:16510/system")
    assert lay.migration_ports == (49300, 49331)  # node A keeps libvirt's 49152-49215
    assert (lay.root, lay.storage_dir, lay.peer_storage_dir, lay.shared_dir) == (
        tmp_path / "b", tmp_path / "b" / "storage", tmp_path / "a" / "storage",
        tmp_path / "shared")


def test_instances_get_their_own_dirs_ports_and_host_uuid(tmp_path: Path) -> None:
    names = ["", "n2", "storage", "x-1", "ci_7"]
    lays = [second_node.layout(n, base=tmp_path) for n in names]
    ports = [p for lay in lays for p in (lay.port, lay.peer_port)]
    assert len(set(ports)) == len(ports)
    ranges = sorted(lay.migration_ports for lay in lays)
    assert all(hi < lo for (_, hi), (lo, _) in itertools.pairwise(ranges))
    assert len({lay.root for lay in lays} | {lay.shared_dir for lay in lays}) == 2 * len(names)
    assert len({lay.host_uuid for lay in lays}) == len(names)
    assert second_node.layout("n2", base=tmp_path) == lays[1]  # stable across calls


@pytest.mark.parametrize("bad", ["../x", "a/b", "with space", "x" * 33])
def test_an_instance_name_cannot_leave_the_nodes_dir(bad: str) -> None:
    with pytest.raises(ValueError, match="instance"):
        second_node.layout(bad)


def test_node_b_config_overrides_keys_once_and_keeps_the_rest(tmp_path: Path) -> None:
    system = tmp_path / "qemu.conf"
    system.write_text('user = "libvirt-qemu"\nmigration_port_min = 49152\n#migration_port_max = 1\n')
    out = tmp_path / "out.conf"
    second_node._write_conf(out, {"migration_port_min": 49300, "auth_tcp": "none"}, keep=system)
    lines = out.read_text().splitlines()
    assert 'user = "libvirt-qemu"' in lines and "#migration_port_max = 1" in lines
    assert [ln for ln in lines if ln.startswith("migration_port_min")] == [
        "migration_port_min = 49300"]
    assert 'auth_tcp = "none"' in lines


def test_node_b_does_not_inherit_the_system_daemons_domains_or_pools() -> None:
    etc = second_node.SYSTEM_ETC
    assert second_node._system_only(str(etc / "qemu"), ["vm1.xml", "networks", "autostart"]) \
        == {"vm1.xml", "autostart"}
    assert second_node._system_only(str(etc), ["qemu.conf", "storage", "secrets", "qemu"]) \
        == {"storage", "secrets"}
    assert second_node._system_only(str(etc / "qemu" / "networks"), ["default.xml"]) == set()


def test_peer_uid_names_the_owner_of_the_client_socket() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname()) as client:
        conn, peer = server.accept()
        with conn:
            assert tcp_forward.peer_uid(peer[:2], server.getsockname()[:2]) == os.geteuid()
            assert tcp_forward.peer_uid(("127.0.0.1", 1), server.getsockname()[:2]) is None
        assert client.getsockname()[:2] == peer[:2]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None,
                    reason="needs root and runuser to act as another user")
def test_node_a_forwarder_serves_root_only(libvirt_conn: object) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # a free port, released for the forwarder
    pid = daemon.listen_tcp(port)
    try:
        assert pid is not None and daemon.answers(daemon.tcp_uri(port))
        other = subprocess.run(["runuser", "-u", "nobody", "--", "virsh", "-c",
                                daemon.tcp_uri(port), "list"],
                               capture_output=True, text=True, timeout=30, check=False)
        assert other.returncode != 0, other.stdout
        assert daemon.listen_tcp(port) is None  # already answering: reused, nothing started
    finally:
        daemon.stop_pid(pid)
    assert not daemon.forwarder_pid_file(port).exists()
