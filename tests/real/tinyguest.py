"""Helpers for the real-QEMU lane and the boot benchmark: a node made of a real libvirtd,
a storage and an image directory, and the tiny guest (scripts/build-tiny-guest.sh) that
reports what it sees on its serial console as `VS-*` lines.

Everything goes through virtsync's own node code: VmSpec → IdentityStore → disks →
networks → build_domain → libvirt. Nothing here hand-writes domain XML.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import libvirt

from node.cluster.networks import NetworkMap, resolve_interfaces
from node.domain.builder import build_domain, to_xml
from node.domain.model import NodeFacts
from node.domain.naming import domain_name
from node.identity.metadata import OwnerMetadata
from node.identity.node_store import Identity, IdentityStore
from node.storage.disks import (
    NodeStorage,
    PreparedDisks,
    claim_sizes,
    ensure_not_attached_elsewhere,
    prepare_disks,
)
from reconciler.core.model import ObjectKey
from reconciler.core.vmspec import VmSpec

REPO = Path(__file__).resolve().parents[2]
GUEST_CACHE = REPO / ".cache" / "tiny-guest"
IMAGE_NAME = "tiny-guest"
# Parallel runs sharing one libvirtd (several checkouts on one machine) set
# VIRTSYNC_REAL_SUFFIX so that no run's clean-up removes another's domains.
SUFFIX = os.environ.get("VIRTSYNC_REAL_SUFFIX", "")
NAMESPACE = f"vsreal{SUFFIX}"  # every real-lane VM lives here; its domains are "vsreal_*"
GUEST_FILES = ("vmlinux", "initramfs.cpio.gz")


def kernel_boot() -> dict[str, Any]:
    """The `firmware` of a VM that boots the tiny guest from the node's image directory."""
    return {"kernelBoot": {
        "container": {"image": IMAGE_NAME, "kernelPath": "/vmlinux",
                      "initrdPath": "/initramfs.cpio.gz"},
        "kernelArgs": "console=ttyS0"}}


def build_tiny_guest(out: Path = GUEST_CACHE) -> Path:
    """Build (or reuse) the kernel + initramfs; returns the folder."""
    subprocess.run(
        ["bash", str(REPO / "scripts" / "build-tiny-guest.sh"), str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return out


def install_image(guest_dir: Path, image_dir: Path, name: str = IMAGE_NAME) -> Path:
    """Put the guest into the node's image directory as a kernelBoot image folder.
    Real files, not symlinks: the node refuses links that leave its image directory."""
    folder = image_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    for f in GUEST_FILES:
        dst = folder / f
        if dst.exists():
            continue
        try:
            os.link(guest_dir / f, dst)
        except OSError:
            shutil.copyfile(guest_dir / f, dst)
    return folder


def make_world_traversable(path: Path) -> None:
    # QEMU runs as libvirt-qemu: it must be able to walk down to the disk files.
    path.chmod(0o755)


@dataclass
class Node:
    """A real libvirt node under test."""

    conn: Any  # libvirt.virConnect
    storage: NodeStorage
    facts: NodeFacts
    networks: NetworkMap = field(default_factory=lambda: NetworkMap({}))

    @property
    def identities(self) -> IdentityStore:
        return IdentityStore(self.storage.storage_dir)


def tiny_vm(
    namespace: str,
    name: str,
    *,
    cores: int = 1,
    claim: str | None = None,
    claim_size: str = "64Mi",
    scratch: bool = False,
    memory: str = "128Mi",
    grace: int = 30,
    multus: tuple[str, ...] = (),
    seed: bool = False,
) -> dict[str, Any]:
    """A VirtualMachine body for the tiny guest: kernelBoot from the image directory,
    one persistent claim disk (vda), optional emptyDisk (vdb), the pod network (eth0) and
    one interface per `multus` network name (eth1, ...); with `seed`, a cloud-init NoCloud
    volume the guest mounts and reports (VS-SEED)."""
    claim = claim or f"{name}-data"
    disks: list[dict[str, Any]] = [{"name": "data", "disk": {"bus": "virtio"}}]
    volumes: list[dict[str, Any]] = [
        {"name": "data", "persistentVolumeClaim": {"claimName": claim}}
    ]
    if scratch:
        disks.append({"name": "scratch", "disk": {"bus": "virtio"}})
        volumes.append({"name": "scratch", "emptyDisk": {"capacity": "16Mi"}})
    if seed:
        disks.append({"name": "seed", "disk": {"bus": "virtio"}})
        user_data = "#cloud-config\npassword: not-for-logs\n"
        volumes.append({"name": "seed", "cloudInitNoCloud": {"userData": user_data}})
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "runStrategy": "Always",
            "dataVolumeTemplates": [
                {
                    "metadata": {"name": claim},
                    "spec": {"storage": {"resources": {"requests": {"storage": claim_size}}}},
                }
            ],
            "template": {
                "spec": {
                    "terminationGracePeriodSeconds": grace,
                    "domain": {
                        "cpu": {"cores": cores},
                        "memory": {"guest": memory},
                        "firmware": {
                            "kernelBoot": {
                                "container": {
                                    "image": IMAGE_NAME,
                                    "kernelPath": "/vmlinux",
                                    "initrdPath": "/initramfs.cpio.gz",
                                },
                                "kernelArgs": "console=ttyS0 panic=-1"
                                + (" vs.seed" if seed else ""),
                            }
                        },
                        "devices": {
                            "disks": disks,
                            "interfaces": [
                                {"name": "default", "masquerade": {}},
                                *({"name": m, "bridge": {}} for m in multus),
                            ],
                        },
                    },
                    "networks": [
                        {"name": "default", "pod": {}},
                        *({"name": m, "multus": {"networkName": m}} for m in multus),
                    ],
                    "volumes": volumes,
                }
            },
        },
    }


@dataclass(frozen=True)
class Incarnation:
    """One started domain: what the node gave it and where its console goes."""

    domain: str
    identity: Identity
    prepared: PreparedDisks
    console: Path
    offset: int
    defined_at: float  # time.monotonic() just before defineXML


def console_path(node: Node, domain: str) -> Path:
    return Path(node.facts.console_log_dir) / f"{domain}.log"


def prepare(
    node: Node, body: dict[str, Any], *, fresh_scratch: bool = True
) -> tuple[VmSpec, Identity, str, PreparedDisks, str]:
    meta = body["metadata"]
    vm = VmSpec.from_body(meta["namespace"], meta["name"], body)
    key = ObjectKey("VirtualMachine", vm.namespace, vm.name)
    ident = node.identities.ensure(key, vm)
    prepared = prepare_disks(
        vm, ident, node.storage, sizes=claim_sizes(vm), fresh_scratch=fresh_scratch
    )
    nics = resolve_interfaces(vm, ident, node.networks)
    owner = OwnerMetadata(vm.namespace, vm.name, source_revision="test", spec_hash="test")
    xml = to_xml(build_domain(vm, ident, node.facts, prepared.disks, nics, prepared.kernel, owner))
    return vm, ident, domain_name(vm.namespace, vm.name), prepared, xml


def launch(node: Node, body: dict[str, Any], *, fresh_scratch: bool = True) -> Incarnation:
    """Define (replacing an inactive old definition) and start the VM, checking first that
    no other running domain holds its disks."""
    _, ident, name, prepared, xml = prepare(node, body, fresh_scratch=fresh_scratch)
    ensure_not_attached_elsewhere(node.conn, prepared.disks, own_domain=name)
    console = console_path(node, name)
    offset = console.stat().st_size if console.exists() else 0
    t0 = time.monotonic()
    dom = node.conn.defineXML(xml)
    dom.create()
    return Incarnation(name, ident, prepared, console, offset, t0)


def read_console(inc: Incarnation) -> str:
    try:
        with inc.console.open("rb") as fh:
            fh.seek(inc.offset)
            return fh.read().decode("utf-8", "replace").replace("\r", "")
    except FileNotFoundError:
        return ""


def wait_console(inc: Incarnation, pattern: str, timeout: float = 60.0, poll: float = 0.02) -> str:
    """Console text of this incarnation once `pattern` (a regex) appears in it."""
    rx = re.compile(pattern, re.M)
    deadline = time.monotonic() + timeout
    while True:
        text = read_console(inc)
        if rx.search(text):
            return text
        if time.monotonic() > deadline:
            tail = "\n".join(text.splitlines()[-15:])
            raise TimeoutError(
                f"{inc.domain}: no {pattern!r} on the console within {timeout:.0f} s; tail:\n{tail}"
            )
        time.sleep(poll)


@dataclass(frozen=True)
class DiskSeen:
    serial: str
    marker_state: str  # new | found | readonly
    marker: str


@dataclass(frozen=True)
class GuestReport:
    """What the guest printed about itself."""

    uuid: str
    serial: str
    cpus: int
    macs: dict[str, str]
    disks: dict[str, DiskSeen]
    ips: dict[str, str]
    seed: str  # "files=meta-data,user-data, instance-id: <uuid>" or "none" or ""


_DISK = re.compile(
    r"^VS-DISK (\S+) serial=(\S*) sectors=\d+ marker=(new|found|readonly):?(\S*)", re.M
)


def parse_report(text: str) -> GuestReport:
    def one(tag: str) -> str:
        m = re.search(rf"^VS-{tag} ?(.*)$", text, re.M)
        return m.group(1).strip() if m else ""

    return GuestReport(
        uuid=one("UUID"),
        serial=one("SERIAL"),
        cpus=int(one("CPUS") or 0),
        macs=dict(re.findall(r"^VS-MAC (\S+) (\S+)", text, re.M)),
        disks={m[0]: DiskSeen(m[1], m[2], m[3]) for m in _DISK.findall(text)},
        ips=dict(re.findall(r"^VS-IP (\S+) (\S+)", text, re.M)),
        seed=one("SEED"),
    )


def graceful_stop(node: Node, domain: str, timeout: float) -> float:
    """ACPI power button, then wait for the domain to go off. Returns seconds taken;
    raises TimeoutError (and leaves the domain running) if the guest ignores it."""
    dom = node.conn.lookupByName(domain)
    t0 = time.monotonic()
    dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
    while dom.isActive():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{domain}: still running {timeout:.0f} s after ACPI shutdown")
        time.sleep(0.05)
    return time.monotonic() - t0


def remove_domains(conn: Any, prefix: str) -> None:
    """Destroy and undefine every domain whose name starts with `prefix`."""
    for dom in conn.listAllDomains(0):
        if not dom.name().startswith(prefix):
            continue
        if dom.isActive():
            with contextlib.suppress(libvirt.libvirtError):
                dom.destroy()
        with contextlib.suppress(libvirt.libvirtError):
            dom.undefine()


def probe_kvm(node: Node, namespace: str) -> str:
    """'kvm' when a KVM guest really reaches its init on this host, else 'qemu' (TCG).
    /dev/kvm existing proves nothing: here it exists and the guest dies at once."""
    kvm = Node(node.conn, node.storage, replace(node.facts, domain_type="kvm"), node.networks)
    body = tiny_vm(namespace, "kvm-probe")
    try:
        inc = launch(kvm, body)
        wait_console(inc, r"^VS-BOOT", timeout=30)
        return "kvm"
    except (libvirt.libvirtError, TimeoutError):
        return "qemu"
    finally:
        remove_domains(node.conn, f"{namespace}_kvm-probe")
