"""Cluster config → nodes and networks for the libvirt backend."""

from __future__ import annotations

import pytest
from backend_helpers import manifest

from node.cluster.config import cluster_from_manifests, default_cluster, parse_cluster
from reconciler.backends.libvirt import LibvirtBackend
from reconciler.core.model import VirtsyncError

ENV = {"VIRTSYNC_STATE_DIR": "/srv/vs"}


def test_default_is_one_local_node_with_uri_from_env() -> None:
    c = default_cluster({**ENV, "VIRTSYNC_LIBVIRT_URI": "test:///default"})
    assert [(n.name, n.uri, n.storage_dir, n.image_dir) for n in c.nodes] == [
        ("local", "test:///default", "/srv/vs/storage", "/srv/vs/images")]
    assert default_cluster(ENV).nodes[0].uri == "qemu:///system"


def test_no_cluster_object_means_default() -> None:
    assert cluster_from_manifests([], ENV) == default_cluster(ENV)


def test_nodes_and_networks_are_parsed() -> None:
    body = {"metadata": {"name": "local"}, "spec": {
        "nodes": [
            {"name": "a", "uri": "qemu:///system", "labels": {"zone": "x"}, "memoryMiB": 2048,
             "storageDir": "/data/a"},
            {"name": "b", "uri": "qemu+ssh://b/system"},
        ],
        "networks": [{"name": "prod", "libvirtNetwork": "default"},
                     {"name": "lab", "bridge": "br0"}],
    }}
    c = parse_cluster(body, "cluster.yaml", ENV)
    a, b = c.nodes
    assert (a.labels, a.memory_mib, a.storage_dir) == ({"zone": "x"}, 2048, "/data/a")
    assert (b.storage_dir, b.image_dir) == ("/srv/vs/storage/b", "/srv/vs/images")
    assert c.network("prod").libvirt_network == "default"
    assert c.network("lab").bridge == "br0"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"nodes": [{"name": "a"}]}, r"cluster\.yaml: spec\.nodes\[0\]\.uri: required"),
        ({"nodes": [{"name": "a", "uri": "x://", "storageDir": "rel"}]},
         r"spec\.nodes\[0\]\.storageDir: must be an absolute path"),
        ({"nodes": [{"name": "a", "uri": "x://"}, {"name": "a", "uri": "y://"}]},
         r"spec\.nodes\[1\]\.name: node 'a' is listed twice"),
        ({"networks": [{"name": "n", "bridge": "b", "libvirtNetwork": "d"}]},
         r"spec\.networks\[0\]: set exactly one of libvirtNetwork or bridge"),
        ({"nodes": [{"name": "a", "uri": "x://", "memoryMiB": 0}]},
         r"spec\.nodes\[0\]\.memoryMiB: expected a positive integer"),
    ],
)
def test_bad_config_names_file_and_field(spec: dict, message: str) -> None:
    with pytest.raises(VirtsyncError, match=message):
        parse_cluster({"spec": spec}, "cluster.yaml", ENV)


def test_two_cluster_objects_are_refused() -> None:
    one = manifest({"metadata": {"name": "a"}}, "Cluster", "virtsync.io/v1alpha1")
    two = manifest({"metadata": {"name": "b"}}, "Cluster", "virtsync.io/v1alpha1")
    with pytest.raises(VirtsyncError, match="more than one Cluster"):
        cluster_from_manifests([one, two], ENV)


def test_backend_from_manifests_uses_the_cluster(tmp_path) -> None:
    c = manifest({"metadata": {"name": "c"}, "spec": {"nodes": [
        {"name": "x", "uri": "test:///default", "storageDir": str(tmp_path / "s")}]}},
        "Cluster", "virtsync.io/v1alpha1")
    b = LibvirtBackend.from_manifests([c], state=tmp_path / "state")
    assert list(b.hosts) == ["x"]
    assert b.observe().objects == ()
    b.close()
