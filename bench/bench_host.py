"""Host mode at 10,000 VMs with nothing to do, on libvirt's test driver: `plan`,
`apply` (no-op) and `watch` start-up (until its startup cycle is done), each a whole
process paired with the floor: one process that connects and fetches every domain's XML.

The host is a test-driver file (`test:///…/host.xml`): every connection to it starts from
the 10,000 domains virtsync itself defined. Set-up (not timed), in a child process:
`apply` of the tree (bench_watch.cheap_vm: Halted, defined without qemu-img) on
test:///default, then every domain's XML, with its run state, written to host.xml; the
tree's Cluster then names that file (one more apply records that configuration change),
and the identity store and inventory stay.

    python bench/bench_host.py [--files 10000] [--runs 5] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_watch
import measure
from measure import Row, Sample

TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
SHUTOFF = 5  # virDomainState


def populate(tree: Path, host_xml: Path) -> None:
    """In this process (test:///default lives while a connection is open): apply the
    tree, then write the driver's domains, networks and pools as a test-driver file."""
    import libvirt
    from lxml import etree

    from reconciler.cli import main as virtsync

    holder = libvirt.open("test:///default")
    rc = virtsync(["apply", str(tree), "--auto-approve"])
    if rc != 0:
        raise SystemExit(f"set-up apply failed: exit {rc}")
    node = etree.Element("node")
    for dom in holder.listAllDomains(0):
        el = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE
                                          | libvirt.VIR_DOMAIN_XML_SECURE))
        state = etree.SubElement(el, f"{{{TEST_NS}}}runstate")
        state.text = str(dom.state()[0] if dom.isActive() else SHUTOFF)
        node.append(el)
    for net in holder.listAllNetworks(0):
        node.append(etree.fromstring(net.XMLDesc(0)))
    for pool in holder.listAllStoragePools(0):
        node.append(etree.fromstring(pool.XMLDesc(0)))
    host_xml.write_bytes(etree.tostring(node, pretty_print=True))
    holder.close()


def rows(files: int, runs: int, work: Path) -> list[Row]:
    tree = work / "tree"
    tree.mkdir()
    bench_watch.write_tree(tree, files, work)
    host_xml = work / "host.xml"
    env = measure.virtsync_env(work / "state")
    measure.run([sys.executable, __file__, "--populate", str(tree), str(host_xml)], env=env)
    uri = f"test://{host_xml}"
    bench_watch.write_cluster(tree, work, uri)
    env["VIRTSYNC_LIBVIRT_URI"] = uri
    listxml = measure.floor_argv("listxml", uri)
    # The Cluster's node URI changed: one apply records that (configuration only).
    measure.run([measure.VIRTSYNC, "apply", str(tree), "--auto-approve"], env=env)
    check = measure.run([measure.VIRTSYNC, "plan", str(tree), "-o", "json"], env=env,
                        capture=True)  # exit 0: the set-up left nothing to do
    assert json.loads(check.out)["summary"]["changes"] == 0

    def floor() -> Sample:
        return measure.run(listxml)

    def startup_done(line: str) -> bool:
        return '"cycle.done"' in line and '"startup"' in line

    watch = [measure.VIRTSYNC, "watch", str(tree), "--no-agent", "--interval", "3600"]
    cases = [
        ("host-plan", "`plan`", lambda: measure.run([measure.VIRTSYNC, "plan", str(tree)],
                                                    env=env)),
        ("host-apply", "`apply`", lambda: measure.run(
            [measure.VIRTSYNC, "apply", str(tree), "--auto-approve"], env=env)),
        ("host-watch-start", "`watch` start-up",
         lambda: measure.run_until(watch, startup_done, env=env)),
    ]
    out = []
    for key, what, side in cases:
        vs, fs = measure.paired(side, floor, runs)
        out.append(measure.row(key, f"host-mode {what}, {files} VMs, nothing changed "
                                    "(test driver)", vs, fs,
                               floor_what="list every domain's XML", target="≤ 1 s"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    measure.add_common_arguments(ap)
    ap.add_argument("--populate", nargs=2, type=Path, metavar=("TREE", "HOST_XML"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.populate:
        os.environ["VIRTSYNC_LIBVIRT_URI"] = "test:///default"
        populate(*args.populate)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-host-") as tmp:
        measure.emit(rows(args.files, args.runs, Path(tmp)), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
