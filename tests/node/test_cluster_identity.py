"""Identity at cluster scope (node.identity.cluster_store): the record in the state directory
counts, node stores are caches and the source it is refilled from; MACs stay unique
across every node; deleting with disks forgets it everywhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_identity import KEY, vm

import node.identity.node_store as identity_mod
from node.identity.cluster_store import ClusterIdentities
from node.identity.node_store import Identity, IdentityStore
from reconciler.core.model import ObjectKey, VirtsyncError

OTHER = ObjectKey("VirtualMachine", "default", "db")
UUID = "6f1c2d3e-0000-4000-8000-000000000001"


def stores(tmp_path: Path) -> ClusterIdentities:
    return ClusterIdentities(IdentityStore(tmp_path / "state"),
                             {n: IdentityStore(tmp_path / n) for n in ("a", "b")})


def test_macs_stay_unique_against_vms_known_only_to_another_node(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # db's record exists only in node b's store (an older installation, or the state
    # directory lost); web is allocated on node a and must not get db's MAC.
    IdentityStore(tmp_path / "b").put(OTHER, Identity(UUID, "s1", {"n": "02:00:00:00:00:01"}))
    # (the first draw is the store's fast path, which allocates nothing)
    draws = iter(["02:00:00:00:00:01", "02:00:00:00:00:01", "02:00:00:00:00:02"])
    monkeypatch.setattr(identity_mod, "new_mac", lambda: next(draws))
    ids = stores(tmp_path)
    web = ids.on("a").ensure(KEY, vm(["n"], []))
    assert web.macs["n"] == "02:00:00:00:00:02"
    # Another installation sharing node a writes a record there later: still avoided.
    shared = ObjectKey("VirtualMachine", "default", "cache")
    IdentityStore(tmp_path / "a").put(shared, Identity(UUID, "s2", {"n": "02:00:00:00:00:03"}))
    draws = iter(["02:00:00:00:00:03"] * 3 + [f"02:00:00:00:01:0{i}" for i in range(4)])
    new = ids.on("a").ensure(ObjectKey("VirtualMachine", "default", "api"), vm(["n"], []))
    assert new.macs["n"] != "02:00:00:00:00:03"


def test_identity_follows_the_vm_and_stale_caches_merge(tmp_path: Path) -> None:
    ids = stores(tmp_path)
    first = ids.on("a").ensure(KEY, vm(["n"], ["d"]))
    # Moved to b, a NIC added there: a's cache is now older than b's.
    later = ids.on("b").ensure(KEY, vm(["n", "m"], ["d"]))
    assert (later.uuid, later.serial, later.macs["n"]) == (first.uuid, first.serial,
                                                            first.macs["n"])
    assert IdentityStore(tmp_path / "b").get(KEY) == later  # cached before any define
    # The reconciler's store is lost: the caches (old and new) make the same identity.
    ids.cluster.forget(KEY)
    again = stores(tmp_path).on("a").ensure(KEY, vm(["n", "m"], ["d"]))
    assert again == later


def test_contradicting_node_caches_fail_only_that_vm(tmp_path: Path) -> None:
    IdentityStore(tmp_path / "a").put(KEY, Identity(UUID, "s1"))
    IdentityStore(tmp_path / "b").put(KEY, Identity(UUID, "s2"))
    ids = stores(tmp_path)
    with pytest.raises(VirtsyncError, match="different identities stored on nodes a, b"):
        ids.on("a").ensure(KEY, vm(["n"], []))
    assert ids.on("a").ensure(OTHER, vm(["n"], [])).uuid  # the others go on


def test_delete_with_disks_forgets_everywhere(tmp_path: Path) -> None:
    ids = stores(tmp_path)
    first = ids.on("a").ensure(KEY, vm(["n"], []))
    ids.on("b").ensure(KEY, vm(["n"], []))
    assert ids.on("a").forget(KEY)
    assert all(s.get(KEY) is None for s in (ids.cluster, *ids.nodes.values()))
    assert stores(tmp_path).on("b").ensure(KEY, vm(["n"], [])).uuid != first.uuid


def test_a_new_identity_costs_one_durable_write_and_a_cached_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13 (watch start-up fsync storms), keeping rule 17: the cluster record is
    fsync'd with its directory; the node's copy only its file (an empty copy would count
    as corrupt), not its directory; the store's generation marker not at all."""
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        name = Path(os.readlink(f"/proc/self/fd/{fd}"))
        synced.append(f"dir {name.relative_to(tmp_path)}" if name.is_dir()
                      else f"file {name.parent.relative_to(tmp_path)}")
        real(fd)

    ids = stores(tmp_path)
    monkeypatch.setattr(os, "fsync", fsync)
    made = ids.on("a").ensure(KEY, vm(["n"], ["d"]))
    cluster_dir = IdentityStore(tmp_path / "state").record_path(KEY).parent
    node_dir = IdentityStore(tmp_path / "a").record_path(KEY).parent
    assert synced == [f"file {cluster_dir.relative_to(tmp_path)}",
                      f"dir {cluster_dir.relative_to(tmp_path)}",
                      f"file {node_dir.relative_to(tmp_path)}"]
    assert IdentityStore(tmp_path / "state").get(KEY) == made
    assert IdentityStore(tmp_path / "a").get(KEY) == made
    synced.clear()
    assert stores(tmp_path).on("a").ensure(KEY, vm(["n"], ["d"])) == made
    assert synced == []  # converged: no write at all
