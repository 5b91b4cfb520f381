"""The model-based test's world: a git tree of VMs written from a small model, the CLI run
in-process or as a process, and what libvirt and the storage directory really hold.

Nothing here decides what should happen; `machine.py` does. This module only writes
specs, runs `virtsync`, and reads live facts (identity, disks, power, owner marker)
straight from libvirt's domain XML and the filesystem.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libvirt
import yaml
from lxml import etree

from node.identity.metadata import NS as OWNER_NS
from reconciler.cli import main

RUN_STRATEGIES = ("Always", "Manual", "Halted", "RerunOnFailure")
DISK_POLICY = "virtsync.io/disk-policy"


@dataclass
class VmModel:
    """One VM as git declares it. `dv` is its own claim (dataVolumeTemplate), fixed at
    creation: a rename keeps it, as a KubeVirt DataVolume name is independent of the VM's.
    `shares` is another VM's claim mounted through persistentVolumeClaim.claimName."""

    name: str
    dv: str
    strategy: str
    delete_policy: bool = False
    cores: int = 1
    label: str = "a"
    extra: bool = False  # a second own claim, `<dv>-x`
    shares: str | None = None
    pins: dict[str, Any] = field(default_factory=dict)  # firmware uuid/serial, mac

    def owned_claims(self) -> set[str]:
        return {self.dv, f"{self.dv}-x"} if self.extra else {self.dv}

    def referenced_claims(self) -> set[str]:
        return self.owned_claims() | ({self.shares} if self.shares else set())

    def body(self, namespace: str, grace: int) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "namespace": namespace,
                                "labels": {"tier": self.label}}
        if self.delete_policy:
            meta["annotations"] = {DISK_POLICY: "Delete"}
        claims = [self.dv, *([f"{self.dv}-x"] if self.extra else [])]
        volumes: list[dict[str, Any]] = [
            {"name": f"d{i}", "dataVolume": {"name": c}} for i, c in enumerate(claims)]
        if self.shares:
            volumes.append({"name": "shared",
                            "persistentVolumeClaim": {"claimName": self.shares}})
        iface: dict[str, Any] = {"name": "default", "masquerade": {}}
        domain: dict[str, Any] = {
            "cpu": {"cores": self.cores}, "memory": {"guest": "64Mi"},
            "devices": {"disks": [{"name": v["name"], "disk": {"bus": "virtio"}}
                                  for v in volumes],
                        "interfaces": [iface]}}
        if self.pins:
            domain["firmware"] = {"uuid": self.pins["uuid"], "serial": self.pins["serial"]}
            iface["macAddress"] = self.pins["mac"]
        return {
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": meta,
            "spec": {
                "runStrategy": self.strategy,
                "dataVolumeTemplates": [
                    {"metadata": {"name": c},
                     "spec": {"storage": {"resources": {"requests": {"storage": "8Mi"}}},
                              "source": {"blank": {}}}} for c in claims],
                "template": {"spec": {
                    "terminationGracePeriodSeconds": grace,
                    "domain": domain,
                    "networks": [{"name": "default", "pod": {}}],
                    "volumes": volumes}},
            },
        }


@dataclass(frozen=True)
class Lane:
    """Where the machine runs. The test driver keeps its state only while a connection is
    open in this process, so there every CLI call runs in-process; the real lane can also
    run `apply` as a process and SIGKILL it at a journalled step."""

    uri: str
    grace: int
    can_kill: bool
    acpi: bool = True  # guests react to the power button (the test driver: at once)
    memory_mib: int | None = None


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class LiveVm:
    domain: str
    active: bool
    uuid: str
    serial: str
    macs: tuple[str, ...]
    disks: frozenset[str]
    owner_marked: bool


class World:
    def __init__(self, root: Path, namespace: str, lane: Lane, conn: Any) -> None:
        self.root = root
        self.namespace = namespace
        self.lane = lane
        self.conn = conn
        self.repo = root / "repo"
        self.storage = root / "storage"
        self.state = root / "state"
        (self.repo / "vms").mkdir(parents=True)
        for d in (self.storage, root / "images"):
            d.mkdir()
            d.chmod(0o755)  # QEMU (libvirt-qemu) walks down to the disks on the real lane
        node: dict[str, Any] = {"name": "n1", "uri": lane.uri, "storageDir": str(self.storage),
                                "imageDir": str(root / "images")}
        if lane.memory_mib:
            node["memoryMiB"] = lane.memory_mib
        (self.repo / "cluster.yaml").write_text(yaml.safe_dump({
            "apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "model"}, "spec": {"nodes": [node]}}))

    # ------------------------------------------------------------------ git tree

    def file(self, name: str) -> Path:
        return self.repo / "vms" / f"{name}.yaml"

    def write(self, vm: VmModel) -> None:
        self.file(vm.name).write_text(yaml.safe_dump(vm.body(self.namespace, self.lane.grace)))

    def remove(self, name: str) -> None:
        self.file(name).unlink()

    def read_pins(self, name: str) -> dict[str, Any]:
        """The identity `virtsync pin` wrote into the VM's file (empty if none)."""
        body = yaml.safe_load(self.file(name).read_text())
        domain = body["spec"]["template"]["spec"]["domain"]
        fw = domain.get("firmware") or {}
        mac = domain["devices"]["interfaces"][0].get("macAddress")
        if not (fw.get("uuid") and fw.get("serial") and mac):
            return {}
        return {"uuid": fw["uuid"], "serial": fw["serial"], "mac": mac}

    # ------------------------------------------------------------------ the CLI

    def env(self) -> dict[str, str]:
        return {"VIRTSYNC_STATE_DIR": str(self.state)}

    def cli(self, *argv: str) -> Ran:
        """`virtsync ARGV` in this process (the test driver's state lives here)."""
        out, err = io.StringIO(), io.StringIO()
        old = os.environ.get("VIRTSYNC_STATE_DIR")
        os.environ["VIRTSYNC_STATE_DIR"] = str(self.state)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(list(argv))
        finally:
            if old is None:
                os.environ.pop("VIRTSYNC_STATE_DIR", None)
            else:
                os.environ["VIRTSYNC_STATE_DIR"] = old
        return Ran(code, out.getvalue(), err.getvalue())

    def cli_killed(self, fault: str, *argv: str) -> Ran:
        """`virtsync ARGV` as a process that SIGKILLs itself at a journalled step."""
        env = dict(os.environ, **self.env(), VIRTSYNC_FAULT_KILL=fault)
        done = subprocess.run([sys.executable, "-m", "reconciler", *argv], env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        return Ran(done.returncode, done.stdout, done.stderr)

    # ------------------------------------------------------------------ live facts

    def domains(self) -> dict[str, Any]:
        prefix = f"{self.namespace}_"
        return {d.name()[len(prefix):]: d for d in self.conn.listAllDomains()
                if d.name().startswith(prefix)}

    def live(self) -> dict[str, LiveVm]:
        return {name: _live_vm(dom) for name, dom in self.domains().items()}

    def claim_files(self) -> dict[str, int]:
        """Claim name → inode of its disk file under the node's storage directory."""
        claims = self.storage / self.namespace / "claims"
        return {p.stem: p.stat().st_ino for p in claims.glob("*.qcow2")} if claims.is_dir() \
            else {}

    def claim_path(self, claim: str) -> str:
        return str(self.storage / self.namespace / "claims" / f"{claim}.qcow2")

    def remove_domains(self) -> None:
        for dom in self.domains().values():
            with contextlib.suppress(libvirt.libvirtError):
                if dom.isActive():
                    dom.destroy()
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)


def _live_vm(dom: Any) -> LiveVm:
    root = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
    serial = root.findtext("sysinfo/system/entry[@name='serial']") or ""
    macs = tuple(sorted(m.get("address", "") for m in root.iterfind("devices/interface/mac")))
    disks = frozenset(s.get("file", "") for s in root.iterfind("devices/disk/source")
                      if s.get("file"))
    try:
        marked = bool(dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, OWNER_NS))
    except libvirt.libvirtError:
        marked = False
    return LiveVm(dom.name(), bool(dom.isActive()), dom.UUIDString(), serial, macs, disks,
                  marked)
