"""virtsync against a real libvirtd (qemu:///system), each run a whole process paired with
its floor (bench/measure.py):

- real-apply-50: `apply` of 50 Halted VMs (containerDisk overlay on one of 3 base images
  + a blank dataVolume each) onto a clean node, vs the raw loop: `qemu-img create` of the
  same disk files + `defineXML` of the same domain XML (recorded from virtsync's own
  apply). Before each side the VMs' domains, disks and state are removed (not timed).
  One more, untimed apply counts virtsync's `qemu-img` calls by subcommand (PATH shim).
- real-noop-apply / real-noop-plan: nothing to do, vs listing every domain's XML on the
  host (other checkouts' domains included: the count is in the row's extra).
- help: `virtsync --help` vs the bare interpreter parsing an empty command line.

    python bench/bench_real.py [--files 50] [--runs 5] [--json F]

Domains are named `vsbench<VIRTSYNC_REAL_SUFFIX>_*`; only those are ever removed. The
daemon is started only if none answers (and then stopped again).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import libvirt
import libvirt_daemon as daemon
import measure
import yaml
from lxml import etree
from measure import Row, Sample

URI = daemon.DEFAULT_URI
NS = f"vsbench{os.environ.get('VIRTSYNC_REAL_SUFFIX', '')}"
IMAGES = 3
QEMU_IMG_SHIM = """#!/bin/sh
echo "$1" >> "$QEMU_IMG_LOG"
exec {real} "$@"
"""


def vm(i: int) -> dict[str, Any]:
    name = f"vm-{i:02d}"
    return {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "runStrategy": "Halted",
            "dataVolumeTemplates": [{"metadata": {"name": f"{name}-data"}, "spec": {
                "storage": {"resources": {"requests": {"storage": "8Mi"}}},
                "source": {"blank": {}}}}],
            "template": {"spec": {
                "domain": {"cpu": {"cores": 1}, "memory": {"guest": "128Mi"},
                           "devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}},
                                                 {"name": "data", "disk": {"bus": "virtio"}}],
                                       "interfaces": [{"name": "default", "masquerade": {}}]}},
                "networks": [{"name": "default", "pod": {}}],
                "volumes": [
                    {"name": "root", "containerDisk": {"image": f"base-{i % IMAGES}.qcow2"}},
                    {"name": "data", "dataVolume": {"name": f"{name}-data"}}]}}},
    }


class Node:
    """A repo, its Cluster (one node on qemu:///system) and the node's directories."""

    def __init__(self, root: Path, count: int) -> None:
        self.root = root
        self.repo, self.storage, self.images = root / "repo", root / "storage", root / "images"
        self.state = root / "state"
        for d in (root, self.repo / "vms", self.images):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o755)  # QEMU (libvirt-qemu) must be able to walk down to disk files
        for k in range(IMAGES):
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2",
                            str(self.images / f"base-{k}.qcow2"), "64M"], check=True)
        (self.repo / "cluster.yaml").write_text(yaml.safe_dump({
            "apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "b"},
            "spec": {"nodes": [{"name": "local", "uri": URI, "storageDir": str(self.storage),
                                "imageDir": str(self.images)}]}}))
        for i in range(count):
            (self.repo / "vms" / f"vm-{i:02d}.yaml").write_text(yaml.safe_dump(vm(i)))
        self.env = measure.virtsync_env(self.state)

    def clean(self, conn: Any) -> None:
        """Only this bench's domains, disks and state: every side starts from nothing."""
        for dom in conn.listAllDomains(0):
            if dom.name().startswith(f"{NS}_"):
                with contextlib.suppress(libvirt.libvirtError):
                    if dom.isActive():
                        dom.destroy()
                    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        shutil.rmtree(self.storage, ignore_errors=True)
        shutil.rmtree(self.state, ignore_errors=True)
        self.storage.mkdir()
        self.storage.chmod(0o755)

    def virtsync(self, *args: str, env: dict[str, str] | None = None) -> Sample:
        return measure.run([measure.VIRTSYNC, *args], env=env or self.env)


def recorded(conn: Any) -> list[dict[str, Any]]:
    """What virtsync made, as the raw loop's input: each domain's XML and its disks'
    qemu-img create arguments (format, size, backing file)."""
    out = []
    for dom in conn.listAllDomains(0):
        if not dom.name().startswith(f"{NS}_"):
            continue
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
        disks = []
        for src in etree.fromstring(xml).iterfind("devices/disk[@device='disk']/source"):
            info = json.loads(subprocess.run(
                ["qemu-img", "info", "--output=json", "-U", src.get("file", "")],
                check=True, capture_output=True, text=True).stdout)
            disks.append({"path": src.get("file"), "format": info["format"],
                          "size": info["virtual-size"],
                          "backing": info.get("full-backing-filename")
                          or info.get("backing-filename"),
                          "backing_format": info.get("backing-filename-format")})
        out.append({"xml": xml, "disks": disks})
    return out


def count_qemu_img(node: Node, conn: Any) -> dict[str, int]:
    shim = node.root / "shim"
    shim.mkdir(exist_ok=True)
    log = node.root / "qemu-img.log"
    (shim / "qemu-img").write_text(QEMU_IMG_SHIM.format(real=shutil.which("qemu-img")))
    (shim / "qemu-img").chmod(0o755)
    log.unlink(missing_ok=True)
    node.clean(conn)
    node.virtsync("apply", str(node.repo), "--auto-approve",
                  env=dict(node.env, PATH=f"{shim}:{os.environ['PATH']}",
                           QEMU_IMG_LOG=str(log)))
    calls: dict[str, int] = {}
    for word in log.read_text().split():
        calls[word] = calls.get(word, 0) + 1
    return calls


def rows(files: int, runs: int, work: Path) -> list[Row]:
    node = Node(work, files)
    conn = libvirt.open(URI)
    spec = work / "raw.json"
    try:
        def apply() -> Sample:
            node.clean(conn)
            s = node.virtsync("apply", str(node.repo), "--auto-approve")
            if not spec.exists():
                spec.write_text(json.dumps(recorded(conn)))
            return s

        def raw() -> Sample:
            node.clean(conn)
            return measure.run(measure.floor_argv("rawapply", str(spec), URI))

        av, af = measure.paired(apply, raw, runs)
        calls = count_qemu_img(node, conn)  # also leaves the node applied for the no-ops
        domains = len(conn.listAllDomains(0))

        def listxml() -> Sample:
            return measure.run(measure.floor_argv("listxml", URI))

        nav, naf = measure.paired(lambda: node.virtsync("apply", str(node.repo),
                                                        "--auto-approve"), listxml, runs)
        npv, npf = measure.paired(lambda: node.virtsync("plan", str(node.repo)), listxml, runs)
        hv, hf = measure.paired(lambda: measure.run([measure.VIRTSYNC, "--help"]),
                                lambda: measure.run(measure.floor_argv("start")), runs)
    finally:
        node.clean(conn)
        conn.close()
    live = f"{domains} domains on the host"
    return [
        measure.row("real-apply-50", f"`apply`, {files} Halted VMs, qemu:///system", av, af,
                    floor_what="raw qemu-img create + defineXML", target="≤ 1.3×",
                    extra={"qemu_img_calls": calls}),
        measure.row("real-noop-apply", f"no-op `apply`, {live}", nav, naf,
                    floor_what="list every domain's XML", target="≤ 2×",
                    extra={"domains": domains}),
        measure.row("real-noop-plan", f"no-op `plan`, {live}", npv, npf,
                    floor_what="list every domain's XML", target="≤ 2×",
                    extra={"domains": domains}),
        measure.row("help", "`virtsync --help`", hv, hf,
                    floor_what="interpreter + argparse", target="≤ 0.1 s"),
    ]


def measured(files: int, runs: int) -> list[Row]:
    """rows() with the daemon up and a node directory QEMU may read (not pytest's 0700
    tmp), both removed afterwards."""
    started = daemon.start(URI)
    work = Path(tempfile.mkdtemp(prefix="virtsync-bench-real-", dir="/var/tmp"))
    try:
        return rows(files, runs, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        daemon.stop(started)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    measure.add_common_arguments(ap, files=50)
    args = ap.parse_args()
    measure.emit(measured(args.files, args.runs), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
