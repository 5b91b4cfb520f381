"""The Cluster config (`virtsync.io/v1alpha1` `Cluster`) as typed node and network settings.

    spec:
      nodes:     [{name, uri, storageDir, imageDir, hostDiskDir, labels, memoryMiB,
                   schedulable, sharedStorage, cpuModel}]
      networks:  [{name, libvirtNetwork | bridge}]
      migration: {bandwidthPerMigration, completionTimeoutPerGiB, allowAutoConverge,
                  allowPostCopy, allowBlockMigration}

`sharedStorage: true` says the node's storageDir is shared storage (the RWX equivalent):
nodes with `sharedStorage` and the same storageDir see the same disk files, so a live
migration between them copies memory only (docs/migration.md).

No Cluster object (or one without nodes) means one local node named `local`: its URI
comes from `VIRTSYNC_LIBVIRT_URI`, else `qemu:///system`; its directories default to
`<state dir>/storage` and `<state dir>/images`. A listed node without `storageDir` gets
`<state dir>/storage/<node name>`, so two nodes never share an identity store. hostDisk
volumes are allowed only on a node with `hostDiskDir`, which must be apart from the
node's storageDir and imageDir and from the state directory (safety rule 14). Pure apart
from reading the environment for those defaults (tests pass `env` explicitly).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.core.hostdisk import dir_conflict
from reconciler.core.migration import MigrationPolicy, parse_policy
from reconciler.core.model import JSON, JSONPath, Manifest, VirtsyncError, format_path
from reconciler.core.statedir import state_dir
from reconciler.planning.schedule import NodeCapacity

DEFAULT_URI = "qemu:///system"
URI_ENV = "VIRTSYNC_LIBVIRT_URI"
DEFAULT_NODE_NAME = "local"
CLUSTER_KIND = "Cluster"


@dataclass(frozen=True)
class NodeConfig:
    name: str
    uri: str
    storage_dir: str
    image_dir: str
    labels: Mapping[str, str] = field(default_factory=dict)
    memory_mib: int | None = None  # capacity override for placement
    host_disk_dir: str | None = None  # hostDisk root; None: hostDisk refused (rule 14)
    schedulable: bool = True  # False: cordoned, placement puts no new VM here
    shared_storage: bool = False  # storageDir is shared with the nodes that say so too
    cpu_model: str | None = None  # the host CPU model (live migration's CPU check)
    migration_uri: str | None = None  # how the other nodes' daemons reach this one
    # Overcommit ratios for placement (vCPUs per host CPU, guest memory per host memory).
    # KubeVirt's defaults: cpuAllocationRatio 10 (DeveloperConfiguration: "Defaults to
    # 10"), memory not overcommitted (memoryOvercommit 100%).
    cpu_overcommit: float = 10.0
    memory_overcommit: float = 1.0

    @property
    def peer_uri(self) -> str:
        """The URI a peer-to-peer live migration to this node targets."""
        return self.migration_uri or self.uri


def _ratio(node: Mapping[str, Any], key: str, default: float, where: str,
           p: JSONPath) -> float:
    value = node.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _err(where, (*p, key), "expected a positive number (a ratio, e.g. 1.5)")
    return float(value)


def node_facts(node: NodeConfig, free_kib: int, *, reachable: bool = True,
               migrates: bool = True, free_vcpus: int | None = None) -> NodeCapacity:
    """What placement and migration see of a configured node, with `free_kib` measured
    (the libvirt host) or configured (readiness)."""
    return NodeCapacity(node.name, node.labels, free_kib, reachable=reachable,
                        host_disk_dir=node.host_disk_dir, schedulable=node.schedulable,
                        shared_storage=node.storage_dir if node.shared_storage else None,
                        cpu_model=node.cpu_model, migrates=migrates, free_vcpus=free_vcpus)


@dataclass(frozen=True)
class NetworkConfig:
    """A multus `networkName` and where it plugs in: exactly one of the two is set."""

    name: str
    libvirt_network: str | None = None
    bridge: str | None = None


@dataclass(frozen=True)
class ClusterConfig:
    nodes: tuple[NodeConfig, ...]
    networks: tuple[NetworkConfig, ...] = ()
    source: str = ""  # file the config came from ('' for the built-in default)
    migration: MigrationPolicy = field(default_factory=MigrationPolicy)

    def node(self, name: str) -> NodeConfig | None:
        return next((n for n in self.nodes if n.name == name), None)

    def network(self, name: str) -> NetworkConfig | None:
        return next((n for n in self.networks if n.name == name), None)


def _defaults(env: Mapping[str, str] | None) -> tuple[str, Path]:
    env = os.environ if env is None else env
    base = Path(env["VIRTSYNC_STATE_DIR"]) if env.get("VIRTSYNC_STATE_DIR") else state_dir()
    return env.get(URI_ENV) or DEFAULT_URI, base


def default_node(env: Mapping[str, str] | None = None) -> NodeConfig:
    uri, base = _defaults(env)
    return NodeConfig(
        name=DEFAULT_NODE_NAME,
        uri=uri,
        storage_dir=str(base / "storage"),
        image_dir=str(base / "images"),
    )


def default_cluster(env: Mapping[str, str] | None = None) -> ClusterConfig:
    return ClusterConfig(nodes=(default_node(env),))


def _err(where: str, path: JSONPath, message: str) -> VirtsyncError:
    return VirtsyncError(f"{where}: {format_path(path)}: {message}")


def _map(value: JSON, where: str, path: JSONPath) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _err(where, path, "expected a mapping")
    return value


def _str(value: JSON, where: str, path: JSONPath, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise _err(where, path, "required")
        return None
    if not isinstance(value, str):
        raise _err(where, path, f"expected a string, got {type(value).__name__}")
    return value


def _abs_dir(value: JSON, where: str, path: JSONPath, default: Path) -> str:
    text = _str(value, where, path, required=False)
    if text is None:
        return str(default)
    if not text.startswith("/"):
        raise _err(where, path, f"must be an absolute path, got {text!r}")
    return text


def _host_disk_dir(value: JSON, where: str, path: JSONPath,
                   own: Iterable[tuple[str, str]]) -> str | None:
    if _str(value, where, path, required=False) is None:
        return None
    text = _abs_dir(value, where, path, Path("/"))
    problem = dir_conflict(text, own)
    if problem is not None:
        raise _err(where, path, problem)
    return text


def parse_cluster(
    body: Mapping[str, JSON], where: str = "Cluster", env: Mapping[str, str] | None = None
) -> ClusterConfig:
    """A Cluster manifest body → ClusterConfig. Errors name `where` and the field."""
    spec = _map(body.get("spec"), where, ("spec",))
    default = default_node(env)
    base = _defaults(env)[1]
    nodes: list[NodeConfig] = []
    for i, raw in enumerate(_list(spec.get("nodes"), where, ("spec", "nodes"))):
        node = _parse_node(raw, where, ("spec", "nodes", i), default, base)
        if any(n.name == node.name for n in nodes):
            raise _err(where, ("spec", "nodes", i, "name"), f"node {node.name!r} is listed twice")
        nodes.append(node)
    networks: list[NetworkConfig] = []
    for i, raw in enumerate(_list(spec.get("networks"), where, ("spec", "networks"))):
        net = _parse_network(raw, where, ("spec", "networks", i))
        if any(n.name == net.name for n in networks):
            raise _err(where, ("spec", "networks", i, "name"),
                       f"network {net.name!r} is listed twice")
        networks.append(net)
    return ClusterConfig(
        nodes=tuple(nodes) or (default,), networks=tuple(networks), source=where,
        migration=parse_policy(spec.get("migration"), where, ("spec", "migration")),
    )


def _list(value: JSON, where: str, path: JSONPath) -> list[JSON]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _err(where, path, "expected a list")
    return value


def _bool(node: Mapping[str, JSON], key: str, default: bool, where: str, p: JSONPath) -> bool:
    value = node.get(key, default)
    if not isinstance(value, bool):
        raise _err(where, (*p, key), "expected true or false")
    return value


def _parse_node(raw: JSON, where: str, p: JSONPath, default: NodeConfig,
                base: Path) -> NodeConfig:
    node = _map(raw, where, p)
    name = _str(node.get("name"), where, (*p, "name"), required=True) or ""
    labels = _map(node.get("labels"), where, (*p, "labels"))
    for k, v in labels.items():
        if not isinstance(v, str):
            raise _err(where, (*p, "labels", k), "label values must be strings")
    memory = node.get("memoryMiB")
    if memory is not None and (
        isinstance(memory, bool) or not isinstance(memory, int) or memory < 1
    ):
        raise _err(where, (*p, "memoryMiB"), "expected a positive integer")
    storage = _abs_dir(node.get("storageDir"), where, (*p, "storageDir"),
                       Path(default.storage_dir) / name)
    images = _abs_dir(node.get("imageDir"), where, (*p, "imageDir"),
                      Path(default.image_dir))
    host_disks = _host_disk_dir(node.get("hostDiskDir"), where, (*p, "hostDiskDir"), (
        ("storageDir", storage), ("imageDir", images), ("state directory", str(base))))
    return NodeConfig(
        name=name,
        uri=_str(node.get("uri"), where, (*p, "uri"), required=True) or "",
        storage_dir=storage,
        image_dir=images,
        labels=dict(labels),
        memory_mib=memory,
        host_disk_dir=host_disks,
        schedulable=_bool(node, "schedulable", True, where, p),
        shared_storage=_bool(node, "sharedStorage", False, where, p),
        cpu_model=_str(node.get("cpuModel"), where, (*p, "cpuModel"), required=False),
        migration_uri=_str(node.get("migrationUri"), where, (*p, "migrationUri"),
                           required=False),
        cpu_overcommit=_ratio(node, "cpuOvercommit", 10.0, where, p),
        memory_overcommit=_ratio(node, "memoryOvercommit", 1.0, where, p),
    )


def _parse_network(raw: JSON, where: str, p: JSONPath) -> NetworkConfig:
    net = _map(raw, where, p)
    name = _str(net.get("name"), where, (*p, "name"), required=True) or ""
    lvn = _str(net.get("libvirtNetwork"), where, (*p, "libvirtNetwork"), required=False)
    bridge = _str(net.get("bridge"), where, (*p, "bridge"), required=False)
    if (lvn is None) == (bridge is None):
        raise _err(where, p, "set exactly one of libvirtNetwork or bridge")
    return NetworkConfig(name=name, libvirt_network=lvn, bridge=bridge)


def cluster_from_manifests(
    manifests: Iterable[Manifest], env: Mapping[str, str] | None = None
) -> ClusterConfig:
    """The one Cluster object among `manifests`, or the default single node."""
    found = [m for m in manifests if m.kind == CLUSTER_KIND]
    if len(found) > 1:
        files = ", ".join(sorted(m.source.file for m in found))
        raise VirtsyncError(f"more than one Cluster object ({files}); keep exactly one")
    if not found:
        return default_cluster(env)
    return parse_cluster(found[0].body, found[0].source.file, env)
