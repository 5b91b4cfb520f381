"""Benchmarks of the node runtime on libvirt's test driver (not timed tests: they report).

    .venv/bin/pytest bench/test_bench_testdriver.py -p no:cacheprovider

- build_1000: the pure builder, 1,000 distinct domains to XML strings.
- lifecycle_1000: build + defineXML + create + destroy + undefine of 1,000 domains on
  test:///default (one connection).
- identity_1000: IdentityStore.ensure for 1,000 new VMs (2 NICs, 2 disks each: random
  allocation, collision checks, atomic write + fsync per VM), then 1,000 converged calls.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import libvirt
import pytest

from node.domain.builder import build_domain, to_xml
from node.domain.model import NodeFacts, ResolvedDisk, ResolvedInterface, UserNet
from node.identity.metadata import OwnerMetadata
from node.identity.node_store import Identity, IdentityStore, new_mac, new_serial, new_uuid
from reconciler.core.model import ObjectKey
from reconciler.core.vmspec import VmSpec

COUNT = 1000
NODE = NodeFacts("bench", "qemu", "x86_64", "q35", "/var/log/virtsync/console")


def _body(i: int) -> dict[str, Any]:
    return {
        "spec": {
            "runStrategy": "Always",
            "template": {
                "spec": {
                    "domain": {
                        "cpu": {"cores": 2},
                        "memory": {"guest": "512Mi"},
                        "devices": {
                            "disks": [{"name": "root"}, {"name": "data"}],
                            "interfaces": [
                                {"name": "default", "masquerade": {}},
                                {"name": "prod", "bridge": {}},
                            ],
                        },
                    },
                    "networks": [{"name": "default", "pod": {}}],
                    "volumes": [],
                }
            },
        }
    }


VMS = [VmSpec.from_body("bench", f"vm-{i:04d}", _body(i)) for i in range(COUNT)]


def _xml(vm: VmSpec) -> str:
    ident = Identity(
        new_uuid(), new_serial(), {"default": new_mac(), "prod": new_mac()},
        {"root": new_serial(), "data": new_serial()},
    )  # fmt: skip
    disks = [
        ResolvedDisk(d, f"/srv/{vm.name}/{d}.qcow2", "qcow2", "disk", "virtio", False,
                     ident.disk_serials[d], 1 if d == "root" else None)
        for d in ("root", "data")
    ]  # fmt: skip
    nics = [ResolvedInterface(n, ident.macs[n], "virtio", UserNet()) for n in ("default", "prod")]
    meta = OwnerMetadata(vm.namespace, vm.name, "rev", "sha256:x", 1)
    return to_xml(build_domain(vm, ident, NODE, disks, nics, None, meta))


def test_build_1000(benchmark: Any) -> None:
    xmls = benchmark.pedantic(lambda: [_xml(vm) for vm in VMS], rounds=3, iterations=1)
    assert len(set(xmls)) == COUNT


def test_lifecycle_1000_on_test_driver(benchmark: Any) -> None:
    conn = libvirt.open("test:///default")

    def cycle() -> int:
        for vm in VMS:
            dom = conn.defineXML(_xml(vm))
            dom.create()
            dom.destroy()
            dom.undefine()
        return len(conn.listAllDomains())

    try:
        left = benchmark.pedantic(cycle, rounds=3, iterations=1)
    finally:
        conn.close()
    assert left == 1  # only the driver's own "test" domain remains


@pytest.mark.parametrize("phase", ["allocate", "converged"])
def test_identity_1000(benchmark: Any, phase: str) -> None:
    def setup() -> tuple[tuple[IdentityStore], dict[str, Any]]:
        store = IdentityStore(tempfile.mkdtemp(prefix="vs-bench-"))
        if phase == "converged":
            for vm in VMS:
                store.ensure(ObjectKey("VirtualMachine", vm.namespace, vm.name), vm)
        return (store,), {}

    def run(store: IdentityStore) -> int:
        for vm in VMS:
            store.ensure(ObjectKey("VirtualMachine", vm.namespace, vm.name), vm)
        return sum(1 for _ in Path(store.root).rglob("*.json"))

    assert benchmark.pedantic(run, setup=setup, rounds=2, iterations=1) == COUNT
