"""Placement honours rule 14: a VM with hostDisk volumes goes only to a node whose
hostDiskDir holds its paths (elsewhere the node would refuse them)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from backend_helpers import backend, manifest, node, vm_body

from reconciler.backends.base import BackendError
from reconciler.core.model import ObjectKey


def _host_vm(name: str, path: str, run: str = "Always") -> dict[str, object]:
    vol = {"name": "host", "hostDisk": {"path": path, "type": "DiskOrCreate",
                                        "capacity": "1Mi"}}
    return vm_body(name, memory="64Mi", run_strategy=run, extra_volumes=[vol])


def test_host_disk_vm_is_placed_on_the_node_with_a_host_disk_dir(tmp_path: Path) -> None:
    # Two separate test-driver hosts (test:///FILE gives each connection its own state);
    # "big" has more free memory but no hostDiskDir.
    (tmp_path / "host.xml").write_text("<node/>")
    uri = f"test://{tmp_path}/host.xml"
    hd = tmp_path / "hostdisks"
    small = replace(node(tmp_path, "small", mib=1024, uri=uri), host_disk_dir=str(hd))
    big = node(tmp_path, "big", mib=8192, uri=uri)
    b = backend(tmp_path, small, big)
    try:
        b.create(manifest(_host_vm("a", "a/disk.img")), revision="r", refs={})
        b.create(manifest(vm_body("plain", memory="64Mi")), revision="r", refs={})
        nodes = {o.key.name: o.node for o in b.observe().objects}
        assert nodes == {"a": "small", "plain": "big"}
        assert (hd / "a" / "disk.img").is_file()

        # A path no node's hostDiskDir holds: unschedulable, saying why; nothing created.
        with pytest.raises(BackendError, match=r"ErrorUnschedulable: 0/2 nodes are "
                           r"available: 2 node\(s\) had no hostDiskDir holding"):
            b.create(manifest(_host_vm("b", "/etc/b.img", run="Halted")), revision="r",
                     refs={})
        key = ObjectKey("VirtualMachine", "default", "b")
        assert next(o for o in b.observe().objects if o.key == key).node == ""
    finally:
        b.close()
