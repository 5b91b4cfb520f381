"""plan_move (node/cluster/migration.py), pure: the destination XML names the target node
in the owner marker (else the target's node entry would not see the migrated domain and
the next plan would create it again), swaps the node's directories, and lists the disks
QEMU copies."""

from __future__ import annotations

from lxml import etree

from node.cluster.migration import NodeDirs, plan_move
from node.identity.metadata import OwnerMetadata, owner_element, parse_owner_metadata

A = NodeDirs("/n/a/storage", "/n/images", "/n/a/storage/.console", shared=False, name="a")
B = NodeDirs("/n/b/storage", "/n/images", "/n/b/storage/.console", shared=False, name="b")


def _domain(node: str, disk: str) -> str:
    root = etree.fromstring(
        f"<domain type='qemu'><name>ns_web</name><metadata/><devices>"
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
        f"<source file='{disk}'/><target dev='vda' bus='virtio'/></disk>"
        f"<serial type='pty'><log file='/n/a/storage/.console/ns_web.log'/></serial>"
        f"</devices></domain>")
    meta = root.find("metadata")
    assert meta is not None
    meta.append(owner_element(OwnerMetadata("ns", "web", "rev", "sha256:x", 3,
                                            installation="inst", node=node)))
    return etree.tostring(root, encoding="unicode")


def test_node_local_move_retargets_marker_disks_and_console() -> None:
    plan = plan_move(_domain("a", "/n/a/storage/ns/claims/web-data.qcow2"), A, B)
    owner = parse_owner_metadata(plan.dest_xml)
    assert owner is not None
    assert (owner.node, owner.installation, owner.generation) == ("b", "inst", 3)
    assert [(c.target, c.source_path, c.dest_path) for c in plan.copies] == [
        ("vda", "/n/a/storage/ns/claims/web-data.qcow2", "/n/b/storage/ns/claims/web-data.qcow2")]
    assert "/n/b/storage/.console/ns_web.log" in plan.dest_xml


def test_shared_move_copies_nothing_but_still_retargets_the_marker() -> None:
    shared_a = NodeDirs("/shared", "/n/images", "/shared/.console", shared=True, name="left")
    shared_b = NodeDirs("/shared", "/n/images", "/shared/.console", shared=True, name="right")
    plan = plan_move(_domain("left", "/shared/ns/claims/web-data.qcow2"), shared_a, shared_b)
    owner = parse_owner_metadata(plan.dest_xml)
    assert owner is not None and owner.node == "right"
    assert plan.copies == ()
    assert "/shared/ns/claims/web-data.qcow2" in plan.dest_xml


def test_a_domain_moved_by_hand_from_another_daemon_stays_visible() -> None:
    """owns() (node/cluster/host.py): only another entry on the same daemon hides a
    domain; one still naming node a after a raw `virsh migrate` to b's daemon is b's."""
    from node.cluster.host import owns

    assert owns("a", "b", frozenset())  # a is another daemon: moved here by hand
    assert owns("gone", "b", frozenset({"c"}))  # an entry no longer in the Cluster
    assert owns("", "b", frozenset({"a"})) and owns("b", "b", frozenset({"a"}))
    assert not owns("a", "b", frozenset({"a"}))  # a shares b's daemon: a's own domain
