"""Host mode at 10,000 VMs with nothing to do, on libvirt's test driver: `plan`,
`apply` (no-op) and `watch` start-up (until its startup cycle is done), each a whole
process paired with the floor: one process that connects and fetches every domain's XML.

Two hosts, each holding the 10,000 domains virtsync itself defined:

- in-process (`host-*` rows): a test-driver file (`test:///…/host.xml`). Every connection
  parses that file when it opens (seconds at 10,000 domains, and its memory counts in the
  connecting process), so this floor is mostly the driver's own start-up. Set-up (not
  timed), in a child process: `apply` of the tree (bench_watch.cheap_vm: Halted, defined
  without qemu-img) on test:///default, then every domain's XML, with its run state,
  written to host.xml; the tree's Cluster then names that file (one more apply records
  that configuration change), and the identity store and inventory stay.
- daemon-backed (`host-*-daemon` rows): the same driver served by libvirtd
  (`test+unix:///default`), as `qemu:///system` is: opening is a socket connect and every
  call is a remote procedure call. libvirtd keeps test:///default while any connection
  holds it, so a keeper process holds one for the rows; set-up is one untimed `apply`.

    python bench/bench_host.py [--files 10000] [--runs 5] [--json F] [--hosts file,daemon]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_watch
import measure
from measure import Row, Sample

TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
SHUTOFF = 5  # virDomainState
DAEMON_URI = "test+unix:///default"
KEEPER = ("import sys, libvirt\n"
          "conn = libvirt.open(sys.argv[1])\n"
          "print('ready', flush=True)\n"
          "sys.stdin.read()\n"
          "conn.close()\n")


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


def rows(files: int, runs: int, work: Path, hosts: Sequence[str] = ("file", "daemon")
         ) -> list[Row]:
    tree = work / "tree"
    tree.mkdir()
    bench_watch.write_tree(tree, files, work)
    host_xml = work / "host.xml"
    env = measure.virtsync_env(work / "state")
    measure.run([sys.executable, __file__, "--populate", str(tree), str(host_xml)], env=env)
    out: list[Row] = []
    if "file" in hosts:
        out += _cases(_moved(Host(tree, env, f"test://{host_xml}", "", "test driver")),
                      files, runs)
    if "daemon" in hosts:
        with _kept(DAEMON_URI):
            # In a child: parsing host.xml here would raise this process's peak RSS, which
            # every later child inherits in its own ru_maxrss (fork copies the high-water
            # mark), so each row's peak would be this process's.
            measure.run([sys.executable, __file__, "--define", DAEMON_URI, str(host_xml)])
            out += _cases(_moved(Host(tree, env, DAEMON_URI, "-daemon",
                                      "test driver in libvirtd")), files, runs)
    return out


def _moved(host: Host) -> Host:
    """Point the tree's Cluster and virtsync at the host's URI; one apply records that
    configuration change."""
    bench_watch.write_cluster(host.tree, host.tree.parent, host.uri)
    host.env["VIRTSYNC_LIBVIRT_URI"] = host.uri
    measure.run([measure.VIRTSYNC, "apply", str(host.tree), "--auto-approve"], env=host.env)
    return host


@contextlib.contextmanager
def _kept(uri: str) -> Iterator[None]:
    """A connection to `uri` held by a child process while the block runs, so that
    libvirtd keeps test:///default between virtsync's connections."""
    keeper = subprocess.Popen([sys.executable, "-c", KEEPER, uri], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert keeper.stdout is not None
        if keeper.stdout.readline().strip() != "ready":
            raise SystemExit(f"cannot hold {uri}: is libvirtd running?")
        yield
    finally:
        assert keeper.stdin is not None
        keeper.stdin.close()
        keeper.wait(timeout=60)


def _define_all(uri: str, host_xml: Path) -> None:
    """The populated domains, as they are in host.xml, defined on `uri`'s host (Halted:
    bench_watch.cheap_vm), so that the identity store and inventory still match."""
    import libvirt
    from lxml import etree

    conn = libvirt.open(uri)

    for el in etree.parse(str(host_xml)).getroot().iterfind("domain"):
        for state in el.findall(f"{{{TEST_NS}}}runstate"):
            el.remove(state)
        conn.defineXML(etree.tostring(el, encoding="unicode"))
    conn.close()


class Host(NamedTuple):
    tree: Path
    env: dict[str, str]
    uri: str
    key_suffix: str
    what: str


def _cases(host: Host, files: int, runs: int) -> list[Row]:
    tree, env = host.tree, host.env
    check = measure.run([measure.VIRTSYNC, "plan", str(tree), "-o", "json"], env=env,
                        capture=True)  # exit 0: the set-up left nothing to do
    assert json.loads(check.out)["summary"]["changes"] == 0
    listxml = measure.floor_argv("listxml", host.uri)

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
        out.append(measure.row(key + host.key_suffix,
                               f"host-mode {what}, {files} VMs, nothing changed "
                               f"({host.what})", vs, fs,
                               floor_what="list every domain's XML", target="≤ 1 s"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    measure.add_common_arguments(ap)
    ap.add_argument("--hosts", default="file,daemon",
                    help="which hosts: file (test-driver file), daemon (libvirtd)")
    ap.add_argument("--define", nargs=2, metavar=("URI", "HOST_XML"), help=argparse.SUPPRESS)
    ap.add_argument("--populate", nargs=2, type=Path, metavar=("TREE", "HOST_XML"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.define:
        _define_all(args.define[0], Path(args.define[1]))
        return 0
    if args.populate:
        os.environ["VIRTSYNC_LIBVIRT_URI"] = "test:///default"
        populate(*args.populate)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-host-") as tmp:
        measure.emit(rows(args.files, args.runs, Path(tmp), args.hosts.split(",")),
                     args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
