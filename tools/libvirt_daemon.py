"""Start and stop libvirt's daemons by hand, for machines without systemd (CI, containers).

Debian 12 ships the monolithic `libvirtd` plus `virtlogd`; both are started as plain child
processes in their own session and stopped by PID. A daemon that already answers is reused
and never stopped by us. Test and demo tooling, not product code: used by the real-QEMU
test lane (imported as `libvirt_daemon`; tests/conftest.py puts tools/ on the path), the
boot benchmark and the demo:

    python tools/libvirt_daemon.py start      # leaves them running, prints their PIDs
    python tools/libvirt_daemon.py stop       # stops the daemons whose pid files name them
                                              # (and TCP forwarders listen_tcp started)

Peer-to-peer live migration towards this node needs it on TCP: `listen_tcp` adds a
forwarder (tools/tcp_forward.py) from 127.0.0.1:PORT to the running daemon's UNIX socket,
so the daemon itself is never restarted (tools/second_node.py uses it).
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URI = "qemu:///system"
KVM_DEVICE = "/dev/kvm"
PID_FILES = ("/run/libvirtd.pid", "/run/virtlogd.pid")
SYSTEM_SOCKET = "/run/libvirt/libvirt-sock"
TCP_PORT = 16509  # libvirt's own default for qemu+tcp
FORWARDER = Path(__file__).resolve().with_name("tcp_forward.py")
FORWARDER_PID_DIR = Path("/run")
FORWARDER_PID_PREFIX = "virtsync-libvirt-tcp-"


class DaemonError(RuntimeError):
    """libvirt's daemons could not be started (missing binaries, no answer in time)."""


@dataclass(frozen=True)
class Daemons:
    """Running libvirt daemons. `started` lists the PIDs we launched (stop only those);
    it is empty when a daemon was already answering on `uri`."""

    uri: str
    started: tuple[int, ...]
    log_dir: str


def answers(uri: str = DEFAULT_URI) -> bool:
    """True when `virsh -c uri version` gets an answer from the hypervisor driver."""
    try:
        done = subprocess.run(
            ["virsh", "-c", uri, "version"],
            capture_output=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and b"Running hypervisor" in done.stdout


def tame_kvm_device(path: str = KVM_DEVICE) -> bool:
    """Give a root-only /dev/kvm to group `kvm`, mode 0660. Returns True when changed.

    With a root-only node present, libvirt re-probes QEMU's capabilities on every call
    and `defineXML` takes 30-50 s (measured). Making the node group-accessible, as udev
    would on a normal host, stops the re-probing. Whether KVM actually works is a
    separate question that only a boot answers; this does not enable it.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISCHR(st.st_mode) or os.geteuid() != 0:
        return False
    try:
        kvm_gid = grp.getgrnam("kvm").gr_gid
    except KeyError:
        return False
    if st.st_gid == kvm_gid and stat.S_IMODE(st.st_mode) & 0o060 == 0o060:
        return False
    os.chown(path, 0, kvm_gid)
    os.chmod(path, 0o660)
    return True


def cpu_has_virtualization() -> bool:
    """True when the CPU advertises VT-x/AMD-V; without it KVM cannot run a guest."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"vmx", "svm"})
    return False


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def start(uri: str = DEFAULT_URI, *, timeout: float = 60.0, log_dir: str | None = None) -> Daemons:
    """Make sure libvirtd (and virtlogd) answer on `uri`, starting them if needed."""
    logs = Path(log_dir or os.environ.get("VIRTSYNC_DAEMON_LOG_DIR", "/var/log/libvirt"))
    logs.mkdir(parents=True, exist_ok=True)
    tame_kvm_device()
    if answers(uri):
        return Daemons(uri=uri, started=(), log_dir=str(logs))
    for binary in ("libvirtd", "virtlogd"):
        if shutil.which(binary) is None and not Path("/usr/sbin", binary).exists():
            raise DaemonError(
                f"{binary} is not installed; run scripts/setup.sh (Debian packages "
                "libvirt-daemon, libvirt-daemon-driver-qemu, libvirt-daemon-system)"
            )
    Path("/run/libvirt").mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    # virtlogd first: QEMU's console and log files go through it.
    procs.append(_spawn([_bin("virtlogd")], logs / "virtlogd.out"))
    procs.append(_spawn([_bin("libvirtd")], logs / "libvirtd.out"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(uri):
            # A daemon that exited at once lost a pid-file race to one already running:
            # that one is not ours to stop.
            ours = tuple(p.pid for p in procs if p.poll() is None)
            return Daemons(uri=uri, started=ours, log_dir=str(logs))
        time.sleep(0.2)
    for p in procs:
        _terminate(p.pid)
    tail = _tail(logs / "libvirtd.out")
    raise DaemonError(f"libvirtd did not answer on {uri} within {timeout:.0f} s; log tail:\n{tail}")


def tcp_uri(port: int) -> str:
    return f"qemu+tcp://127.0.0.1:{port}/system"


def forwarder_pid_file(port: int) -> Path:
    return FORWARDER_PID_DIR / f"{FORWARDER_PID_PREFIX}{port}.pid"


def listen_tcp(port: int = TCP_PORT, *, socket_path: str = SYSTEM_SOCKET,
               timeout: float = 15.0, log_dir: str | None = None) -> int | None:
    """Make the daemon behind `socket_path` answer on `tcp_uri(port)`. Returns the PID of
    the forwarder we started (stop it with `stop_pid`), None when something already
    answered there."""
    uri = tcp_uri(port)
    if answers(uri):
        return None
    logs = Path(log_dir or os.environ.get("VIRTSYNC_DAEMON_LOG_DIR", "/var/log/libvirt"))
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"tcp-forward-{port}.out"
    proc = _spawn([sys.executable, str(FORWARDER), "--port", str(port), "--socket", socket_path,
                   "--pid-file", str(forwarder_pid_file(port))], log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DaemonError(f"TCP forwarder for {uri} exited ({proc.returncode}); "
                              f"log tail:\n{_tail(log)}")
        if answers(uri):
            return proc.pid
        time.sleep(0.1)
    _terminate(proc.pid)
    raise DaemonError(f"{uri} did not answer within {timeout:.0f} s; log tail:\n{_tail(log)}")


def stop_pid(pid: int | None, *, timeout: float = 15.0) -> None:
    """Stop one process we started (a no-op for None)."""
    if pid is not None:
        _terminate(pid, timeout=timeout)


def stop(daemons: Daemons, *, timeout: float = 15.0) -> None:
    """Stop the daemons we started (libvirtd before virtlogd). Guests keep running."""
    for pid in reversed(daemons.started):
        _terminate(pid, timeout=timeout)


def _bin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists": reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def _terminate(pid: int, *, timeout: float = 15.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _pid_from_file(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/libvirt_daemon.py", description=__doc__,
                                     allow_abbrev=False)
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--uri", default=DEFAULT_URI)
    args = parser.parse_args(argv)
    if args.action == "status":
        ok = answers(args.uri)
        print("running" if ok else "not running")
        return 0 if ok else 1
    if args.action == "start":
        try:
            d = start(args.uri)
        except DaemonError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print("started " + " ".join(map(str, d.started)) if d.started else "already running")
        return 0
    forwarders = sorted(map(str, FORWARDER_PID_DIR.glob(f"{FORWARDER_PID_PREFIX}*.pid")))
    pids = [p for p in map(_pid_from_file, (*forwarders, *PID_FILES)) if p is not None]
    for pid in pids:
        _terminate(pid)
    print("stopped " + " ".join(map(str, pids)) if pids else "nothing to stop")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
