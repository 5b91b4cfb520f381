"""Shared set-up for the libvirt backend tests on libvirt's test driver."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from node.cluster.config import ClusterConfig, NetworkConfig, NodeConfig
from reconciler.backends.libvirt import LibvirtBackend
from reconciler.core.model import Manifest, SourceRef

TEST_URI = "test:///default"
# The test driver's own "test" domain uses 8 GiB; 16 GiB capacity leaves 8 GiB free.
NODE_MIB = 16384


def vm_body(name: str = "web", namespace: str = "default", *, run_strategy: str = "Always",
            cores: int = 1, memory: str = "128Mi", user_data: str | None = None,
            grace: int | None = 5, extra_volumes: list[Any] | None = None) -> dict[str, Any]:
    disks: list[Any] = [{"name": "scratch", "disk": {"bus": "virtio"}}]
    volumes: list[Any] = [{"name": "scratch", "emptyDisk": {"capacity": "1Mi"}}]
    if user_data is not None:
        disks.append({"name": "cloudinit", "disk": {}})
        volumes.append({"name": "cloudinit", "cloudInitNoCloud": {"userData": user_data}})
    for vol in extra_volumes or []:
        disks.append({"name": vol["name"], "disk": {}})
        volumes.append(vol)
    tmpl: dict[str, Any] = {
        "domain": {
            "cpu": {"cores": cores},
            "memory": {"guest": memory},
            "devices": {
                "disks": disks,
                "interfaces": [{"name": "default", "masquerade": {}}],
            },
        },
        "networks": [{"name": "default", "pod": {}}],
        "volumes": volumes,
    }
    if grace is not None:
        tmpl["terminationGracePeriodSeconds"] = grace
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"runStrategy": run_strategy, "template": {"spec": tmpl}},
    }


def manifest(body: dict[str, Any], kind: str = "VirtualMachine",
             api: str = "kubevirt.io/v1") -> Manifest:
    meta = body["metadata"]
    return Manifest(api, kind, meta.get("namespace", ""), meta["name"], copy.deepcopy(body),
                    SourceRef(f"{meta['name']}.yaml"))


def node(tmp: Path, name: str = "n1", *, labels: dict[str, str] | None = None,
         mib: int = NODE_MIB, uri: str = TEST_URI) -> NodeConfig:
    return NodeConfig(name, uri, str(tmp / name / "storage"), str(tmp / name / "images"),
                      labels or {}, mib)


def backend(tmp: Path, *nodes: NodeConfig,
            networks: tuple[NetworkConfig, ...] = ()) -> LibvirtBackend:
    cluster = ClusterConfig(nodes=nodes or (node(tmp),), networks=networks)
    return LibvirtBackend(cluster, state=tmp / "state")
