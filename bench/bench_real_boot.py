"""Benchmark: the real tiny guest's time from define to its first console line.

Each round goes through virtsync's node code (identity, disks, networks, builder), then
defineXML + create on qemu:///system, and polls the serial console log every 5 ms.
Reported per round: node preparation (before define), define → first console line
(the kernel's first message), define → the guest's init reporting (VS-READY; includes
module loading and a DHCP lease), and ACPI stop time. Then the median of each.

    .venv/bin/python bench/bench_real_boot.py [--rounds 5] [--json]

Starts libvirtd/virtlogd when none answer (and stops them again), builds the tiny guest
into .cache/tiny-guest if missing. Domain type: TCG unless KVM is proven by a boot.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "real"))
sys.path.insert(0, str(REPO / "tools"))

import libvirt  # noqa: E402
import libvirt_daemon as daemon  # noqa: E402
import tinyguest  # noqa: E402

from node.domain.model import NodeFacts  # noqa: E402
from node.storage.disks import NodeStorage  # noqa: E402

NAMESPACE = "vsbench"


def one_round(node: tinyguest.Node, i: int) -> dict[str, float]:
    body = tinyguest.tiny_vm(NAMESPACE, f"boot{i}")
    t0 = time.monotonic()
    tinyguest.prepare(node, body)  # identity, disks, NICs, XML: what the node does first
    prep = time.monotonic() - t0
    inc = tinyguest.launch(node, body)
    tinyguest.wait_console(inc, r"\S", timeout=120, poll=0.005)
    first = time.monotonic() - inc.defined_at
    tinyguest.wait_console(inc, r"^VS-READY", timeout=120, poll=0.005)
    ready = time.monotonic() - inc.defined_at
    stop = tinyguest.graceful_stop(node, inc.domain, timeout=60)
    node.conn.lookupByName(inc.domain).undefine()
    return {
        "prepare_s": prep,
        "define_to_first_line_s": first,
        "define_to_ready_s": ready,
        "acpi_stop_s": stop,
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args()

    guest = tinyguest.build_tiny_guest()
    started = daemon.start(daemon.DEFAULT_URI)
    root = Path(tempfile.mkdtemp(prefix="virtsync-bench-", dir="/var/tmp"))
    conn = libvirt.open(daemon.DEFAULT_URI)
    try:
        tinyguest.make_world_traversable(root)
        dirs = [root / d for d in ("storage", "images", "console")]
        for d in dirs:
            d.mkdir()
            tinyguest.make_world_traversable(d)
        tinyguest.install_image(guest, dirs[1])
        facts = NodeFacts("local", "qemu", "x86_64", "q35", str(dirs[2]))
        node = tinyguest.Node(conn, NodeStorage.of(dirs[0], dirs[1]), facts)
        if daemon.cpu_has_virtualization():
            node.facts = NodeFacts(
                "local", tinyguest.probe_kvm(node, NAMESPACE), "x86_64", "q35", str(dirs[2])
            )
        rounds = [one_round(node, i) for i in range(args.rounds)]
    finally:
        tinyguest.remove_domains(conn, f"{NAMESPACE}_")
        conn.close()
        daemon.stop(started)
        shutil.rmtree(root, ignore_errors=True)

    keys = list(rounds[0])
    medians = {k: statistics.median(r[k] for r in rounds) for k in keys}
    if args.json:
        print(
            json.dumps(
                {"domain_type": node.facts.domain_type, "rounds": rounds, "median": medians},
                indent=2,
            )
        )
        return 0
    print(f"tiny guest, domain type {node.facts.domain_type}, {args.rounds} rounds (seconds)")
    print(f"{'round':>5}  " + "  ".join(f"{k:>22}" for k in keys))
    for i, r in enumerate(rounds):
        print(f"{i:>5}  " + "  ".join(f"{r[k]:>22.3f}" for k in keys))
    print(f"{'med':>5}  " + "  ".join(f"{medians[k]:>22.3f}" for k in keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
