"""node/networks: pod → user-mode NIC, multus → libvirt network or bridge, fixed MACs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import libvirt
import pytest

from node.cluster.config import parse_cluster
from node.cluster.networks import NetworkMap, check_sources, resolve_interfaces
from node.domain.model import Bridge, LibvirtNetwork, UserNet
from node.identity.node_store import Identity
from reconciler.core.model import VirtsyncError
from reconciler.core.vmspec import VmSpec

IDENT = Identity(
    uuid="5e2f3a52-7d0c-4f1e-9a57-0d6b1c2e3f40",
    serial="S",
    macs={"default": "02:00:00:00:00:01", "prod": "02:00:00:00:00:02", "lab": "02:00:00:00:00:03"},
)
CLUSTER = {
    "apiVersion": "virtsync.io/v1alpha1",
    "kind": "Cluster",
    "metadata": {"name": "local"},
    "spec": {
        "networks": [
            {"name": "prod", "libvirtNetwork": "default"},
            {"name": "lab", "bridge": "br-lab"},
        ]
    },
}


def networks_of(cluster: dict[str, Any]) -> NetworkMap:
    return NetworkMap.from_config(parse_cluster(cluster).networks)


def vm(interfaces: list[dict[str, Any]], networks: list[dict[str, Any]]) -> VmSpec:
    body = {
        "spec": {
            "template": {
                "spec": {
                    "domain": {"memory": {"guest": "64Mi"}, "devices": {"interfaces": interfaces}},
                    "networks": networks,
                }
            }
        }
    }
    return VmSpec.from_body("ns1", "vm1", body)


def test_pod_and_multus_networks_map_to_sources_with_stored_macs() -> None:
    spec = vm(
        [
            {"name": "default", "masquerade": {}},
            {"name": "prod", "bridge": {}, "model": "e1000e"},
            {"name": "lab", "bridge": {}, "bootOrder": 2},
        ],
        [
            {"name": "default", "pod": {}},
            {"name": "prod", "multus": {"networkName": "prod"}},
            {"name": "lab", "multus": {"networkName": "other-ns/lab"}},
        ],
    )
    nics = resolve_interfaces(spec, IDENT, networks_of(CLUSTER))
    assert [(n.name, n.mac, n.model, n.source, n.boot_order) for n in nics] == [
        ("default", "02:00:00:00:00:01", "virtio", UserNet(), None),
        ("prod", "02:00:00:00:00:02", "e1000e", LibvirtNetwork("default"), None),
        ("lab", "02:00:00:00:00:03", "virtio", Bridge("br-lab"), 2),
    ]


def test_unknown_multus_network_names_the_field_and_known_names() -> None:
    spec = vm([{"name": "x", "bridge": {}}], [{"name": "x", "multus": {"networkName": "dmz"}}])
    ident = Identity(uuid=IDENT.uuid, serial="S", macs={"x": "02:00:00:00:00:09"})
    with pytest.raises(
        VirtsyncError, match=r"interfaces\[0\]: multus networkName 'dmz' .*known: lab, prod"
    ):
        resolve_interfaces(spec, ident, networks_of(CLUSTER))


@pytest.mark.parametrize("binding", ["sriov", "macvtap", "passt"])
def test_bindings_a_libvirt_node_lacks_are_refused(binding: str) -> None:
    spec = vm([{"name": "default", binding: {}}], [{"name": "default", "pod": {}}])
    with pytest.raises(VirtsyncError, match=f"{binding}: binding not supported"):
        resolve_interfaces(spec, IDENT, NetworkMap({}))


def test_mac_comes_only_from_the_identity_store() -> None:
    spec = vm([{"name": "other", "masquerade": {}}], [{"name": "other", "pod": {}}])
    with pytest.raises(VirtsyncError, match="no MAC in the identity store"):
        resolve_interfaces(spec, IDENT, NetworkMap({}))
    pinned = vm(
        [{"name": "default", "masquerade": {}, "macAddress": "02:aa:aa:aa:aa:aa"}],
        [{"name": "default", "pod": {}}],
    )
    with pytest.raises(VirtsyncError, match="pinned 02:aa:aa:aa:aa:aa"):
        resolve_interfaces(pinned, IDENT, NetworkMap({}))


def test_interface_without_network_is_refused() -> None:
    spec = vm([{"name": "default", "masquerade": {}}], [])
    with pytest.raises(VirtsyncError, match="no network named 'default'"):
        resolve_interfaces(spec, IDENT, NetworkMap({}))


def test_check_sources_reports_missing_networks_and_bridges(tmp_path: Path) -> None:
    conn = libvirt.open("test:///default")  # has an active network named 'default'
    try:
        spec = vm(
            [{"name": "prod", "bridge": {}}, {"name": "lab", "bridge": {}}],
            [
                {"name": "prod", "multus": {"networkName": "prod"}},
                {"name": "lab", "multus": {"networkName": "lab"}},
            ],
        )
        nics = resolve_interfaces(spec, IDENT, networks_of(CLUSTER))
        (tmp_path / "br-lab" / "bridge").mkdir(parents=True)
        assert check_sources(conn, nics, sys_class_net=str(tmp_path)) == ()
        missing = networks_of({"spec": {"networks": [
            {"name": "prod", "libvirtNetwork": "nope"}, {"name": "lab", "bridge": "br-none"},
        ]}})  # fmt: skip
        problems = check_sources(
            conn, resolve_interfaces(spec, IDENT, missing), sys_class_net=str(tmp_path)
        )
        assert [p.message for p in problems] == [
            "libvirt network 'nope' is not defined",
            "host bridge 'br-none' does not exist",
        ]
    finally:
        conn.close()
