"""A running tiny guest watched across a live migration, and raw peer-to-peer migration
with libvirt-python (the floor a later `virtsync migrate` is compared with).

After `VS-READY` the tiny guest (scripts/build-tiny-guest.sh) prints
`VS-TICK <n> boot=<boot id> up=<uptime>` every 0.5 s and, every 4th tick,
`VS-CHECK n=<n> uuid=… serial=… mac.<nic>=… disk.<vd>=<marker>`, the marker read back
from the disk itself. A counter that goes on under one boot id means the guest kept
running; VS-CHECK says what it sees of its identity now.

No relative imports: bench/bench_migrate_floor.py imports this as a top-level module.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libvirt
from lxml import etree

TICK_SECONDS = 0.5
CHECK_EVERY = 4  # ticks
# Whole lines only: the console log is read while the guest writes it, and a line cut
# mid-way ("uuid=119a892f-12c3") must not count as what the guest reported.
_TICK = re.compile(r"^VS-TICK (\d+) boot=(\S+) up=([\d.]+)\r?\n", re.M)
_CHECK = re.compile(r"^VS-CHECK (.*?)\r?\n", re.M)

# Peer-to-peer live migration, persistent on the target, undefined on the source only
# when the migration succeeded.
MIGRATE_FLAGS = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
                 | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
# libvirt cannot tell that a plain directory is shared by both nodes ("Migration without
# shared storage is unsafe"): memory-only migration over the shared directory needs this.
SHARED_STORAGE_FLAGS = MIGRATE_FLAGS | libvirt.VIR_MIGRATE_UNSAFE
# Node-local disks: copy them (drive-mirror over NBD) into pre-created target files.
COPY_STORAGE_FLAGS = MIGRATE_FLAGS | libvirt.VIR_MIGRATE_NON_SHARED_DISK


@dataclass(frozen=True)
class Tick:
    n: int
    boot: str
    uptime: float


def ticks(text: str) -> list[Tick]:
    return [Tick(int(n), boot, float(up)) for n, boot, up in _TICK.findall(text)]


def checks(text: str) -> list[dict[str, str]]:
    """Every VS-CHECK line as {"n": …, "uuid": …, "serial": …, "mac.eth0": …, "disk.vda": …}."""
    return [dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            for line in _CHECK.findall(text)]


def boot_count(text: str) -> int:
    return len(re.findall(r"^VS-BOOT", text, re.M))


@dataclass
class TickWatch:
    """Records when each tick reaches the console log (host clock), polling every 10 ms
    in a thread, to see the longest silence a migration caused."""

    path: Path
    offset: int = 0
    arrived: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> TickWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def wait_fresh_tick(self, timeout: float = 30.0) -> None:
        """Wait for a tick printed after the watch began (the ones already in the log all
        "arrive" at its first read), so that gaps are measured from a real arrival."""
        began = time.monotonic()
        while not any(t > began for t in list(self.arrived.values())):
            if time.monotonic() - began > timeout:
                raise TimeoutError(f"{self.path.name}: no new tick within {timeout:.0f} s")
            time.sleep(0.02)

    def _run(self) -> None:
        pending = b""
        pos = self.offset
        while not self._stop.is_set():
            try:
                with self.path.open("rb") as fh:
                    fh.seek(pos)
                    chunk = fh.read()
            except FileNotFoundError:
                chunk = b""
            pos += len(chunk)
            now = time.monotonic()
            # Complete lines only, each with its newline: a tick read on its own in one
            # poll (the usual case) must count.
            complete, newline, pending = (pending + chunk).rpartition(b"\n")
            for t in ticks((complete + newline).decode("utf-8", "replace")):
                self.arrived.setdefault(t.n, now)
            time.sleep(0.01)

    def longest_gap(self, since: float, until: float) -> float:
        """The longest time between consecutive ticks that arrived in [since, until]
        (plus the tick just before `since`)."""
        order = sorted(self.arrived.items())
        times = [t for _, t in order]
        first = max([i for i, t in enumerate(times) if t <= since] or [0])
        window = [t for t in times[first:] if t <= until]
        return max((b - a for a, b in itertools.pairwise(window)), default=0.0)


def wait_text(path: Path, offset: int, ready: Any, timeout: float, what: str) -> str:
    """The console text from `offset` once `ready(text)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_bytes()[offset:].decode("utf-8", "replace").replace("\r", "")
        if ready(text):
            return text
        if time.monotonic() > deadline:
            tail = "\n".join(text.splitlines()[-10:])
            raise TimeoutError(f"{path.name}: {what} not seen within {timeout:.0f} s; tail:\n{tail}")
        time.sleep(0.05)


def wait_check_after(path: Path, offset: int, tick: int, timeout: float = 30.0) -> str:
    """Console text once a VS-CHECK from a tick later than `tick` is there."""
    return wait_text(path, offset,
                     lambda text: any(int(c.get("n", 0)) > tick for c in checks(text)),
                     timeout, f"a VS-CHECK after tick {tick}")


@dataclass(frozen=True)
class Migration:
    seconds: float  # wall clock of the migrate call
    stats: dict[str, Any]  # the destination's completed-job statistics (ms, bytes)

    @property
    def downtime_ms(self) -> int:
        return int(self.stats.get("downtime", -1))


def migrate(dom: Any, dest_uri: str, dest: Any, *, flags: int = SHARED_STORAGE_FLAGS,
            params: dict[str, Any] | None = None) -> Migration:
    """Peer-to-peer live migration of `dom` to the daemon at `dest_uri` (`dest` is a
    connection to it, for the job statistics)."""
    name = dom.name()
    t0 = time.monotonic()
    dom.migrateToURI3(dest_uri, params or {}, flags)
    seconds = time.monotonic() - t0
    stats = dest.lookupByName(name).jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    return Migration(seconds, dict(stats))


def copy_storage_params(dom: Any, source_dir: Path, target_dir: Path) -> dict[str, Any]:
    """Parameters for a node-local-disk migration: the destination XML with every disk
    under `source_dir` moved to `target_dir`, and each such target pre-created (empty
    qcow2 of the same virtual size) as libvirt's copy-storage requires."""
    root = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE))
    moved: list[str] = []
    for disk in root.iterfind("devices/disk[@device='disk']"):
        source = disk.find("source")
        if source is None or not Path(source.get("file", "/")).is_relative_to(source_dir):
            continue
        path = Path(source.get("file", "/"))
        target = target_dir / path.relative_to(source_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        size = dom.blockInfo(str(path))[0]  # capacity, bytes
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(target), str(size)],
                       check=True)
        source.set("file", str(target))
        moved.append(str(disk.xpath("string(target/@dev)")))
    return {
        libvirt.VIR_MIGRATE_PARAM_DEST_XML: etree.tostring(root, encoding="unicode"),
        libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS: moved,
    }
