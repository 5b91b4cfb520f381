"""Benchmark: raw `virsh migrate` of the running tiny guest between two real libvirt nodes,
A → B → A, several rounds — the floor a later `virtsync migrate` is held to (≤ 1.2×).

Node A is qemu:///system, node B a second libvirtd on this machine (tools/second_node.py);
the guest's disk sits in a directory both nodes see (memory-only migration, so `--unsafe`:
libvirt cannot tell a plain directory is shared). Each hop is timed around

    virsh -c SRC migrate --live --p2p --persistent --undefinesource --unsafe NAME DEST_URI

and libvirt's own job time and downtime are read afterwards (outside the timing). At the
end the guest's console must show one boot and an unbroken counter.

    .venv/bin/python bench/bench_migrate_floor.py [--rounds 5] [--json] [--instance X]

Starts the daemons that do not answer (and stops only those), builds the tiny guest into
.cache/tiny-guest if missing. Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "real"))
sys.path.insert(0, str(REPO / "tools"))

import libvirt  # noqa: E402
import libvirt_daemon as daemon  # noqa: E402
import liveguest  # noqa: E402
import second_node  # noqa: E402
import tinyguest  # noqa: E402

from node.domain.model import NodeFacts  # noqa: E402
from node.storage.disks import NodeStorage  # noqa: E402

NAMESPACE = "vsbench"
VIRSH_MIGRATE = ("migrate", "--live", "--p2p", "--persistent", "--undefinesource", "--unsafe")


def hop(name: str, src_uri: str, dest_uri: str, dest: Any) -> dict[str, float]:
    """One timed `virsh migrate`; libvirt's job figures come from the destination."""
    t0 = time.monotonic()
    done = subprocess.run(["virsh", "-c", src_uri, *VIRSH_MIGRATE, name, dest_uri],
                          capture_output=True, text=True, check=False)
    seconds = time.monotonic() - t0
    if done.returncode != 0:
        raise RuntimeError(f"virsh migrate {src_uri} → {dest_uri}: {done.stderr.strip()}")
    stats = dest.lookupByName(name).jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    return {"seconds": seconds, "job_ms": float(stats.get("time_elapsed", -1)),
            "downtime_ms": float(stats.get("downtime", -1))}


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run(rounds: int, lay: second_node.Layout, root: Path) -> dict[str, Any]:
    guest = tinyguest.build_tiny_guest()
    dirs = [root / d for d in ("shared", "images", "console")]
    for d in dirs:
        d.mkdir()
        tinyguest.make_world_traversable(d)
    tinyguest.install_image(guest, dirs[1])
    a, b = libvirt.open(daemon.DEFAULT_URI), libvirt.open(lay.uri)
    facts = NodeFacts("a", "qemu", "x86_64", "q35", str(dirs[2]))
    node = tinyguest.Node(a, NodeStorage.of(dirs[0], dirs[1]), facts)
    try:
        inc = tinyguest.launch(node, tinyguest.tiny_vm(NAMESPACE, "floor"))
        liveguest.wait_check_after(inc.console, inc.offset, 0, timeout=120)
        hops: dict[str, list[dict[str, float]]] = {"a_to_b": [], "b_to_a": []}
        for _ in range(rounds):
            hops["a_to_b"].append(hop(inc.domain, daemon.DEFAULT_URI, lay.uri, b))
            hops["b_to_a"].append(hop(inc.domain, lay.uri, lay.peer_uri, a))
        text = liveguest.wait_check_after(
            inc.console, inc.offset, liveguest.ticks(tinyguest.read_console(inc))[-1].n)
        counted = [t.n for t in liveguest.ticks(text)]
        if liveguest.boot_count(text) != 1 or counted != list(range(1, len(counted) + 1)):
            raise RuntimeError(f"{inc.domain}: the guest restarted or lost ticks")
    finally:
        for conn in (a, b):
            tinyguest.remove_domains(conn, f"{NAMESPACE}_")
            conn.close()
    every = [h for direction in hops.values() for h in direction]
    return {
        "rounds": rounds,
        "hops": hops,
        "hop_seconds": summary([h["seconds"] for h in every]),
        "round_trip_seconds": summary([x["seconds"] + y["seconds"]
                                       for x, y in zip(hops["a_to_b"], hops["b_to_a"],
                                                       strict=True)]),
        "downtime_ms": summary([h["downtime_ms"] for h in every]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="A → B → A round trips")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--instance", default=os.environ.get("VIRTSYNC_REAL_SUFFIX", ""),
                    help="which second node (tools/second_node.py --instance)")
    args = ap.parse_args()

    started = daemon.start(daemon.DEFAULT_URI)
    b = second_node.start(args.instance)
    root = Path(tempfile.mkdtemp(prefix="virtsync-bench-", dir="/var/tmp"))
    try:
        tinyguest.make_world_traversable(root)
        result = run(args.rounds, b.layout, root)
    finally:
        second_node.stop(b)
        daemon.stop(started)
        shutil.rmtree(root, ignore_errors=True)

    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"raw virsh migrate of the tiny guest (128 MiB, TCG), {args.rounds} rounds A → B → A")
    print(f"{'round':>5}  {'A→B s':>7}  {'B→A s':>7}  {'downtime ms':>12}")
    for i, (x, y) in enumerate(zip(result["hops"]["a_to_b"], result["hops"]["b_to_a"],
                                   strict=True)):
        print(f"{i:>5}  {x['seconds']:>7.3f}  {y['seconds']:>7.3f}  "
              f"{x['downtime_ms']:>5.0f} {y['downtime_ms']:>5.0f}")
    for key in ("hop_seconds", "round_trip_seconds", "downtime_ms"):
        s = result[key]
        print(f"{key:>18}: median {s['median']:.3f}  min {s['min']:.3f}  max {s['max']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
