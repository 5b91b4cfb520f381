"""A second libvirt node on this machine: a real second libvirtd for live-migration tests
and demos (test and demo tooling, not product code; scripts/second-node.sh wraps it).

Node A is the system daemon (`qemu:///system`, started by tools/libvirt_daemon.py or the
machine). Node B is another libvirtd + virtlogd started under `unshare --mount`, with
private bind mounts of its own directories over /etc/libvirt, /run/libvirt,
/var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt, its own pid files, its own
`host_uuid` (libvirt refuses to migrate to the "same host") and its own QEMU migration
ports. Everything else — /dev, /tmp, /var/tmp, the network — is shared, as two hosts with
a common filesystem would share it.

Both nodes answer on TCP, so each libvirtd can reach the other for peer-to-peer
migration: B listens itself (`listen_tcp`, `auth_tcp = "none"`, 127.0.0.1 only), A gets a
forwarder to its UNIX socket (libvirt_daemon.listen_tcp) because the running system daemon
must not be restarted. With `auth_tcp = "none"` any local user can manage node B: use it on
test and demo machines only.

Default layout (`--instance X` adds `-X` to the directory names and moves every port to
its own slot, so parallel test runs do not share a node):

    node a  qemu+tcp://127.0.0.1:16509/system   node-local storage /var/lib/virtsync-nodes/a/storage
    node b  qemu+tcp://127.0.0.1:16510/system   node-local storage /var/lib/virtsync-nodes/b/storage
            QEMU migration ports 49300-49331, its tree under /var/lib/virtsync-nodes/b
    shared  /var/lib/virtsync-nodes/shared  (same path on both nodes: the RWX equivalent)

"Node-local" is a convention here: both daemons see the whole filesystem, so a node-local
disk is simply one in that node's storage directory.

    python tools/second_node.py start [--instance X] [--json]   # reuses a running node B
    python tools/second_node.py status [--instance X] [--json]
    python tools/second_node.py stop [--instance X]   # guests on B keep running
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt_daemon as daemon
from lxml import etree

BASE_DIR = Path(os.environ.get("VIRTSYNC_NODES_DIR", "/var/lib/virtsync-nodes"))
SYSTEM_ETC = Path("/etc/libvirt")
# (directory under the node's root, the system path it hides inside the node's namespace)
PRIVATE_DIRS = (
    ("etc", "/etc/libvirt"),
    ("run", "/run/libvirt"),
    ("lib", "/var/lib/libvirt"),
    ("cache", "/var/cache/libvirt"),
    ("log", "/var/log/libvirt"),
)
NODE_B_PORT = 16510
MIGRATION_PORT_BASE = 49300  # node A keeps libvirt's default 49152-49215
MIGRATION_PORT_SPAN = 32
INSTANCE_SLOTS = 200  # instances hashed into slots; a clash is reported, never shared
UUID_NAMESPACE = uuid.UUID("6f1d7c1e-3c3b-4d39-9a55-9f0c1b2e5a10")
_INSTANCE = re.compile(r"^[A-Za-z0-9_-]{0,32}$")

# Runs inside the new mount namespace: hide the system daemon's directories behind the
# node's own, start the node's virtlogd (QEMU's console logs go through it), then become
# its libvirtd, so the launcher's PID is libvirtd's.
LAUNCHER = r"""
set -e
root="$1" virtlogd="$2" libvirtd="$3"
shift 3
while [ "$#" -gt 0 ]; do mount --bind "$root/$1" "$2"; shift 2; done
"$virtlogd" --pid-file "$root/virtlogd.pid" &
exec "$libvirtd" --listen --pid-file "$root/libvirtd.pid"
"""


class NodeError(daemon.DaemonError):
    """The second node could not be started, or its port is taken by something else."""


@dataclass(frozen=True)
class Layout:
    """Where one second node lives and listens; everything derives from its instance."""

    instance: str
    root: Path  # node B's own tree: private directories, pid files, daemon output
    port: int  # node B's libvirtd on 127.0.0.1
    peer_port: int  # node A (the system daemon) on 127.0.0.1, through tcp_forward
    migration_ports: tuple[int, int]  # node B's QEMU incoming-migration ports
    storage_dir: Path  # node B's node-local storage
    peer_storage_dir: Path  # node A's node-local storage
    shared_dir: Path  # seen by both nodes at the same path

    @property
    def uri(self) -> str:
        return daemon.tcp_uri(self.port)

    @property
    def peer_uri(self) -> str:
        return daemon.tcp_uri(self.peer_port)

    @property
    def host_uuid(self) -> str:
        # Stable across restarts of the same node; never the system daemon's.
        return str(uuid.uuid5(UUID_NAMESPACE, f"node-b/{self.instance}"))

    @property
    def libvirtd_pid_file(self) -> Path:
        return self.root / "libvirtd.pid"

    @property
    def virtlogd_pid_file(self) -> Path:
        return self.root / "virtlogd.pid"

    @property
    def output(self) -> Path:
        return self.root / "daemons.out"


def layout(instance: str = "", base: Path = BASE_DIR) -> Layout:
    """The node for `instance` ("" is the default node; test runs pass their suffix)."""
    if not _INSTANCE.match(instance):
        raise ValueError(f"instance {instance!r}: use up to 32 letters, digits, '-' or '_'")
    slot = 1 + zlib.crc32(instance.encode()) % INSTANCE_SLOTS if instance else 0
    suffix = f"-{instance}" if instance else ""
    peer_port = daemon.TCP_PORT + 2 * slot if slot else daemon.TCP_PORT
    low = MIGRATION_PORT_BASE + MIGRATION_PORT_SPAN * slot
    root = base / f"b{suffix}"
    return Layout(
        instance=instance,
        root=root,
        port=peer_port + 1 if slot else NODE_B_PORT,
        peer_port=peer_port,
        migration_ports=(low, low + MIGRATION_PORT_SPAN - 1),
        storage_dir=root / "storage",
        peer_storage_dir=base / f"a{suffix}" / "storage",
        shared_dir=base / f"shared{suffix}",
    )


@dataclass(frozen=True)
class SecondNode:
    """A running node B. `started` lists the PIDs we launched (virtlogd, libvirtd) and
    `peer_forwarder` node A's TCP forwarder if we launched it; `stop` stops only those."""

    layout: Layout
    started: tuple[int, ...]
    peer_forwarder: int | None


def start(instance: str = "", *, timeout: float = 120.0) -> SecondNode:
    """Make node B (and node A's TCP access) answer, starting what does not."""
    lay = layout(instance)
    if not daemon.answers(daemon.DEFAULT_URI):
        raise NodeError(f"node A ({daemon.DEFAULT_URI}) is not running; start it first: "
                        "python tools/libvirt_daemon.py start")
    with _locked(lay):
        _make_dirs(lay)
        # Node B's libvirtd connects back here for peer-to-peer migration B → A.
        peer = daemon.listen_tcp(lay.peer_port)
        try:
            return SecondNode(lay, _start_node_b(lay, timeout), peer)
        except BaseException:
            daemon.stop_pid(peer)
            raise


def stop(node: SecondNode, *, timeout: float = 15.0) -> None:
    """Stop what `start` launched (libvirtd before virtlogd). Guests on B keep running and
    are found again by the next start of the same node."""
    for pid in reversed(node.started):
        daemon.stop_pid(pid, timeout=timeout)
    daemon.stop_pid(node.peer_forwarder, timeout=timeout)


def _start_node_b(lay: Layout, timeout: float) -> tuple[int, ...]:
    if daemon.answers(lay.uri):
        _check_identity(lay)
        return ()
    _write_config(lay)
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", LAUNCHER, "sh",
            str(lay.root), _binary("virtlogd"), _binary("libvirtd")]
    for private, system in PRIVATE_DIRS:
        argv += [private, system]
    with lay.output.open("ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_answering(lay, proc, timeout)
        _check_identity(lay)
    except BaseException:
        for pid in (proc.pid, *_own_pids(lay.virtlogd_pid_file)):
            daemon.stop_pid(pid)
        raise
    return (*_own_pids(lay.virtlogd_pid_file), proc.pid)


def _wait_answering(lay: Layout, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if daemon.answers(lay.uri):
            return
        time.sleep(0.2)
    state = "exited" if proc.poll() is not None else f"did not answer within {timeout:.0f} s"
    raise NodeError(f"node B ({lay.uri}) {state}; output ({lay.output}):\n{_tail(lay.output)}")


def _check_identity(lay: Layout) -> None:
    """Whatever answers on node B's port must be node B: the same host UUID."""
    found = host_uuid(lay.uri)
    if found != lay.host_uuid:
        raise NodeError(f"{lay.uri} answers with host UUID {found}, not node B's "
                        f"{lay.host_uuid} (from {lay.root / 'etc' / 'libvirtd.conf'}): "
                        f"another daemon holds port {lay.port}, or node B ignored its config")


def host_uuid(uri: str) -> str:
    """The host UUID a libvirt daemon reports in its capabilities."""
    done = subprocess.run(["virsh", "-c", uri, "capabilities"], capture_output=True,
                          timeout=30, check=False)
    if done.returncode != 0:
        raise NodeError(f"virsh -c {uri} capabilities: {done.stderr.decode(errors='replace')}")
    found = etree.fromstring(done.stdout).findtext("host/uuid")
    return (found or "").strip()


def _make_dirs(lay: Layout) -> None:
    # QEMU runs as libvirt-qemu: it must be able to walk down to disks and logs.
    for d in (lay.root.parent, lay.root, lay.storage_dir, lay.peer_storage_dir.parent,
              lay.peer_storage_dir, lay.shared_dir):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o755)
    for private, system in PRIVATE_DIRS:
        (lay.root / private).mkdir(exist_ok=True)
        Path(system).mkdir(parents=True, exist_ok=True)  # the mount point


def _write_config(lay: Layout) -> None:
    etc = lay.root / "etc"
    if not (etc / "qemu.conf").exists():
        shutil.copytree(SYSTEM_ETC, etc, dirs_exist_ok=True, ignore=_system_only)
    _write_conf(etc / "libvirtd.conf", {
        "listen_tls": 0,
        "listen_tcp": 1,
        "listen_addr": "127.0.0.1",
        "tcp_port": str(lay.port),
        "auth_tcp": "none",
        "host_uuid": lay.host_uuid,
    }, keep=SYSTEM_ETC / "libvirtd.conf")
    # migration_address / migration_host cannot be 127.0.0.1 (libvirt refuses a local
    # address there); the destination picks its address from the hostname instead.
    _write_conf(etc / "qemu.conf", {
        "migration_port_min": lay.migration_ports[0],
        "migration_port_max": lay.migration_ports[1],
    }, keep=SYSTEM_ETC / "qemu.conf")


def _system_only(directory: str, names: list[str]) -> set[str]:
    """What node B must not inherit from the system daemon's /etc/libvirt: its domains,
    autostart links, storage pools and secrets."""
    here = Path(directory)
    if here == SYSTEM_ETC:
        return {"storage", "secrets"} & set(names)
    if here == SYSTEM_ETC / "qemu":
        return {n for n in names if n.endswith(".xml") or n == "autostart"}
    return set()


def _write_conf(path: Path, settings: dict[str, int | str], *, keep: Path) -> None:
    """`keep`'s lines minus the keys we set, then ours (libvirt's conf syntax)."""
    ours = re.compile(rf"^\s*({'|'.join(map(re.escape, settings))})\s*=")
    try:
        kept = [ln for ln in keep.read_text().splitlines() if not ours.match(ln)]
    except FileNotFoundError:
        kept = []
    lines = [*kept, "", "# tools/second_node.py"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    path.write_text("\n".join(lines) + "\n")


@contextlib.contextmanager
def _locked(lay: Layout) -> Iterator[None]:
    lay.root.parent.mkdir(parents=True, exist_ok=True)
    with (lay.root.parent / f".{lay.root.name}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _binary(name: str) -> str:
    found = shutil.which(name) or str(Path("/usr/sbin", name))
    if not Path(found).exists():
        raise NodeError(f"{name} is not installed; run scripts/setup.sh")
    return found


def _own_pids(pid_file: Path) -> tuple[int, ...]:
    """The PID in one of node B's pid files, if that process is still the one that wrote
    it (its command line names the file)."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return ()
    return (pid,) if str(pid_file).encode() in cmdline else ()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def running_domains(uri: str) -> list[str]:
    done = subprocess.run(["virsh", "-c", uri, "list", "--name"], capture_output=True,
                          text=True, timeout=30, check=False)
    return [n for n in done.stdout.split() if n] if done.returncode == 0 else []


def describe(lay: Layout) -> dict[str, Any]:
    """The two nodes' URIs and directories, as printed and as --json."""
    return {
        "nodes": {
            "a": {"uri": lay.peer_uri, "local_uri": daemon.DEFAULT_URI,
                  "storage_dir": str(lay.peer_storage_dir),
                  "answers": daemon.answers(lay.peer_uri)},
            "b": {"uri": lay.uri, "storage_dir": str(lay.storage_dir), "root": str(lay.root),
                  "host_uuid": lay.host_uuid,
                  "migration_ports": list(lay.migration_ports),
                  "answers": daemon.answers(lay.uri)},
        },
        "shared_dir": str(lay.shared_dir),
    }


def _print(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(info, indent=2))
        return
    a, b = info["nodes"]["a"], info["nodes"]["b"]
    state = {True: "up", False: "down"}
    print(f"node a  {a['uri']}  {state[a['answers']]}  (the system daemon, "
          f"{a['local_uri']})  storage {a['storage_dir']}")
    low, high = b["migration_ports"]
    print(f"node b  {b['uri']}  {state[b['answers']]}  (migration ports {low}-{high}, "
          f"tree {b['root']})  storage {b['storage_dir']}")
    print(f"shared  {info['shared_dir']}  (same path on both nodes)")


def _stop_cli(lay: Layout) -> int:
    if daemon.answers(lay.uri):
        left = running_domains(lay.uri)
        if left:
            print(f"note: still running on node b (they keep running and are found again "
                  f"by the next start): {', '.join(left)}", file=sys.stderr)
    pids = [*_own_pids(lay.libvirtd_pid_file), *_own_pids(lay.virtlogd_pid_file)]
    forwarder = daemon.forwarder_pid_file(lay.peer_port)
    with contextlib.suppress(OSError, ValueError):
        fwd = int(forwarder.read_text().strip())
        if daemon.FORWARDER.name.encode() in Path(f"/proc/{fwd}/cmdline").read_bytes():
            pids.append(fwd)
    for pid in pids:
        daemon.stop_pid(pid)
    print("stopped " + " ".join(map(str, pids)) if pids else "nothing to stop")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/second-node.sh", description=__doc__,
                                     allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--instance", default="",
                        help="a separate node B (own dirs and ports), e.g. a test run's suffix")
    parser.add_argument("--json", action="store_true", help="print URIs and dirs as JSON")
    args = parser.parse_args(argv)
    try:
        lay = layout(args.instance)
        if args.action == "stop":
            return _stop_cli(lay)
        if args.action == "start":
            start(args.instance)
        info = describe(lay)
    except (ValueError, daemon.DaemonError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print(info, args.json)
    return 0 if info["nodes"]["b"]["answers"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
