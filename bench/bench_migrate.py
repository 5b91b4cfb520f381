"""Benchmark: `virtsync migrate NAME --to NODE --wait` versus raw `virsh migrate` of the
same running tiny guest between two real libvirt nodes (target ≤ 1.2×, issue 10).

Node A is qemu:///system, node B a second libvirtd (tools/second_node.py); the guest's
disk sits in a directory both nodes share (memory-only migration). `virtsync apply`
boots it on A; then each round times, alternating, a virtsync round trip
(A → B → A with `virtsync migrate --wait`, the whole command: start-up, reading the tree,
observing both nodes, the migration) and a raw one (`virsh migrate --live --p2p
--persistent --undefinesource --unsafe`, as bench/bench_migrate_floor.py). Per-hop
medians, min, max and the ratio of the medians are printed; at the end the guest's
console must show one boot and an unbroken counter.

    .venv/bin/python bench/bench_migrate.py [--rounds 5] [--json] [--instance X]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "real"))
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "bench"))

import libvirt  # noqa: E402
import libvirt_daemon as daemon  # noqa: E402
import liveguest  # noqa: E402
import second_node  # noqa: E402
import tinyguest  # noqa: E402
import yaml  # noqa: E402
from bench_migrate_floor import hop, summary  # noqa: E402
from measure import ensure_bytecode  # noqa: E402

NAMESPACE = "vsbenchm"
NAME = "mover"
DOMAIN = f"{NAMESPACE}_{NAME}"


def write_tree(root: Path, lay: second_node.Layout) -> tuple[Path, Path]:
    """A repo with a Cluster (a, b sharing one storage directory) and the tiny guest."""
    shared, images, repo = root / "shared", root / "images", root / "repo"
    for d in (shared, images, repo):
        d.mkdir()
        tinyguest.make_world_traversable(d)
    tinyguest.install_image(tinyguest.build_tiny_guest(), images)
    nodes = [{"name": n, "uri": uri, "migrationUri": peer, "storageDir": str(shared),
              "imageDir": str(images), "sharedStorage": True}
             for n, uri, peer in (("a", daemon.DEFAULT_URI, lay.peer_uri),
                                  ("b", lay.uri, lay.uri))]
    (repo / "cluster.yaml").write_text(yaml.safe_dump({
        "apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "bench"},
        "spec": {"nodes": nodes}}))
    (repo / "vm.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {"runStrategy": "Always", "template": {"spec": {
            "domain": {"cpu": {"cores": 1}, "memory": {"guest": "128Mi"},
                       "firmware": tinyguest.kernel_boot(),
                       "devices": {"interfaces": [{"name": "default", "masquerade": {}}]}},
            "networks": [{"name": "default", "pod": {}}]}}}}))
    return repo, shared


def virtsync(repo: Path, env: dict[str, str], *args: str) -> float:
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "reconciler", *args], env=env,
                          capture_output=True, text=True, check=False)
    seconds = time.monotonic() - t0
    if done.returncode != 0:
        raise RuntimeError(f"virtsync {' '.join(args)}: {done.stdout}{done.stderr}")
    return seconds


# An untimed pause before every hop, on both sides: a migration started right after the
# previous one runs while the daemons still tear the old QEMU down and is slower, so
# without it whichever side starts later (virtsync, after its start-up) gains.
SETTLE_SECONDS = 1.0


def settle() -> None:
    time.sleep(SETTLE_SECONDS)


def run(rounds: int, lay: second_node.Layout, root: Path) -> dict[str, Any]:
    repo, shared = write_tree(root, lay)
    env = dict(os.environ, VIRTSYNC_STATE_DIR=str(root / "state"),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    a, b = libvirt.open(daemon.DEFAULT_URI), libvirt.open(lay.uri)
    key = f"{NAMESPACE}/{NAME}"
    mine: list[float] = []
    raw: list[float] = []
    try:
        virtsync(repo, env, "apply", str(repo))
        (console,) = shared.rglob(f"{DOMAIN}*.log")
        liveguest.wait_check_after(console, 0, 0, timeout=120)
        for _ in range(rounds):
            for to in ("b", "a"):
                settle()
                mine.append(virtsync(repo, env, "migrate", key, "--path", str(repo),
                                     "--to", to, "--wait"))
            settle()
            raw.append(hop(DOMAIN, daemon.DEFAULT_URI, lay.uri, b)["seconds"])
            settle()
            raw.append(hop(DOMAIN, lay.uri, lay.peer_uri, a)["seconds"])
        text = liveguest.wait_check_after(
            console, 0, liveguest.ticks(console.read_text(errors="replace"))[-1].n)
        counted = [t.n for t in liveguest.ticks(text)]
        if liveguest.boot_count(text) != 1 or counted != list(range(1, len(counted) + 1)):
            raise RuntimeError(f"{DOMAIN}: the guest restarted or lost ticks")
    finally:
        for conn in (a, b):
            tinyguest.remove_domains(conn, f"{NAMESPACE}_")
            conn.close()
    m, r = summary(mine), summary(raw)
    return {"rounds": rounds, "virtsync_hop_seconds": m, "virsh_hop_seconds": r,
            "ratio_of_medians": m["median"] / r["median"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="paired A → B → A round trips")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--instance", default=os.environ.get("VIRTSYNC_REAL_SUFFIX", ""),
                    help="which second node (tools/second_node.py --instance)")
    args = ap.parse_args()
    ensure_bytecode()
    started = daemon.start(daemon.DEFAULT_URI)
    node_b = second_node.start(args.instance)
    root = Path(tempfile.mkdtemp(prefix="virtsync-bench-", dir="/var/tmp"))
    try:
        tinyguest.make_world_traversable(root)
        result = run(args.rounds, node_b.layout, root)
    finally:
        second_node.stop(node_b)
        daemon.stop(started)
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"virtsync migrate --wait vs virsh migrate, tiny guest, {args.rounds} rounds A → B → A")
    for label in ("virtsync_hop_seconds", "virsh_hop_seconds"):
        s = result[label]
        print(f"{label:>21}: median {s['median']:.3f}  min {s['min']:.3f}  max {s['max']:.3f}")
    print(f"{'ratio of medians':>21}: {result['ratio_of_medians']:.2f}x (target <= 1.2x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
