"""Identity records of a batch of new VMs in one durable step (issue 13, rule 17): the
store's transaction writes the same records `ensure` would, each fsync'd before any is
renamed into place and the directories fsync'd before it returns; MACs stay unique
inside it; a block that raises writes nothing; a VM whose ensure fails is skipped and
still fails on its own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from domain_cases import vm_body

import node.identity.node_store as node_store
from node.identity.cluster_store import ClusterIdentities
from node.identity.node_store import IdentityStore
from reconciler.core import fsutil
from reconciler.core.model import ObjectKey, VirtsyncError
from reconciler.core.vmspec import VmSpec


def _key(name: str) -> ObjectKey:
    return ObjectKey("VirtualMachine", "team", name)


def _spec(name: str, **firmware: str) -> VmSpec:
    domain: dict[str, Any] = {"memory": {"guest": "64Mi"}, "firmware": firmware,
                              "devices": {"interfaces": [{"name": "eth0", "masquerade": {}}],
                                          "disks": [{"name": "root"}]}}
    return VmSpec.from_body("team", name, vm_body(domain))


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """('fsync', path) and ('replace', target) as fsutil does them, in order."""
    seen: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        real_fsync(fd)
        seen.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))

    def replace(src: str, dst: str | os.PathLike[str]) -> None:
        real_replace(src, dst)
        seen.append(("replace", str(dst)))

    monkeypatch.setattr(fsutil.os, "fsync", fsync)
    monkeypatch.setattr(fsutil.os, "replace", replace)
    return seen


def _records(store: IdentityStore) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(store.root.rglob("*.json"))}


def test_every_record_is_on_disk_before_any_is_renamed_into_place(
        tmp_path: Path, events: list[tuple[str, str]]) -> None:
    store = IdentityStore(tmp_path)
    names = ["a", "b", "c", "d", "e"]
    store.ensure_many([(_key(n), _spec(n)) for n in names])
    records = [str(store.record_path(_key(n))) for n in names]
    renames = [i for i, (what, path) in enumerate(events) if what == "replace" and path in records]
    temp_syncs = [i for i, (what, path) in enumerate(events)
                  if what == "fsync" and ".json." in path and path.endswith(".tmp")]
    assert len(renames) == len(names) and len(temp_syncs) == len(names)
    assert max(temp_syncs) < min(renames)  # all data durable before the first rename
    dir_syncs = [i for i, (what, path) in enumerate(events)
                 if what == "fsync" and path == str(store.root / "team")]
    assert dir_syncs and min(dir_syncs) > max(renames)  # then the renames themselves
    # The same records `ensure` keeps: asking again writes nothing.
    before = _records(store)
    events.clear()
    for n in names:
        assert store.ensure(_key(n), _spec(n)) == store.get(_key(n))
    assert events == [] and _records(store) == before


def test_macs_stay_unique_inside_a_transaction(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The MAC generator offers the first VM's address to the second VM too (each ensure
    draws twice): the second must see it taken by a record that is not on disk yet."""
    offered = iter(["02:00:00:00:00:01"] * 4 + [f"02:00:00:00:01:{i:02x}" for i in range(10)])
    monkeypatch.setattr(node_store, "new_mac", lambda: next(offered))
    store = IdentityStore(tmp_path)
    store.ensure_many([(_key(n), _spec(n)) for n in ("x", "y", "z")])
    macs = [store.get(_key(n)).macs["eth0"] for n in ("x", "y", "z")]  # type: ignore[union-attr]
    assert len(set(macs)) == 3, macs


def test_a_block_that_raises_writes_nothing(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path)
    with pytest.raises(RuntimeError), store.transaction():
        ghost = store.ensure(_key("ghost"), _spec("ghost"))
        assert store.get(_key("ghost")) == ghost  # read back from memory inside
        raise RuntimeError("interrupted")
    assert store.get(_key("ghost")) is None and _records(store) == {}
    # Its MAC is not held by a record that was never written.
    assert ghost.macs["eth0"] not in store.macs_of_others(_key("other"))


def test_a_vm_whose_ensure_fails_is_skipped_and_fails_alone(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path)
    stored = store.ensure(_key("pinned"), _spec("pinned"))
    other_uuid = "9b8f1c2e-0000-4000-8000-000000000001"
    store.ensure_many([(_key("pinned"), _spec("pinned", uuid=other_uuid)),
                       (_key("fresh"), _spec("fresh"))])
    assert store.get(_key("fresh")) is not None
    assert store.get(_key("pinned")) == stored  # the contradicting pin changed nothing
    with pytest.raises(VirtsyncError, match="contradicts"):
        store.ensure(_key("pinned"), _spec("pinned", uuid=other_uuid))


def test_cluster_records_are_durable_before_their_node_copies(
        tmp_path: Path, events: list[tuple[str, str]]) -> None:
    cluster = IdentityStore(tmp_path / "state")
    node = IdentityStore(tmp_path / "node")
    view = ClusterIdentities(cluster, {"n1": node}).on("n1")
    view.ensure_many([(_key(n), _spec(n)) for n in ("p", "q")])
    for n in ("p", "q"):
        assert node.get(_key(n)) == cluster.get(_key(n)) is not None
    renames = [path for what, path in events if what == "replace" and path.endswith(".json")]
    cluster_dir = str(cluster.root)
    assert [p.startswith(cluster_dir) for p in renames] == [True, True, False, False]


@pytest.mark.parametrize("held", ["02:00:00:00:0a:01", "02:00:00:00:0A:01"],
                         ids=["lower-case", "upper-case record"])
def test_a_mac_only_the_node_store_holds_is_never_handed_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: str) -> None:
    """Another installation sharing the node wrote a record after this process imported
    the node's records: its MAC is reserved through the node's index (a membership view
    when every stored MAC is lower-case, a lower-cased copy otherwise)."""
    cluster = IdentityStore(tmp_path / "state")
    node = IdentityStore(tmp_path / "node")
    view = ClusterIdentities(cluster, {"n1": node}).on("n1")
    view.ensure(_key("first"), _spec("first"))  # imports the node's records (none yet)
    theirs = node_store.Identity("u", "s", {"eth0": held}, {})
    node.put(ObjectKey("VirtualMachine", "elsewhere", "theirs"), theirs)
    offered = iter(["02:00:00:00:0a:01"] * 3 + [f"02:00:00:00:0b:{i:02x}" for i in range(9)])
    monkeypatch.setattr(node_store, "new_mac", lambda: next(offered))
    view.ensure_many([(_key("second"), _spec("second"))])
    got = cluster.get(_key("second"))
    assert got is not None and got.macs["eth0"] != held.lower()


def _dv(name: str, namespace: str = "team") -> Any:
    from reconciler.core.model import Manifest, SourceRef

    return Manifest("cdi.kubevirt.io/v1beta1", "DataVolume", namespace, name,
                    {"spec": {"storage": {"resources": {"requests": {"storage": "1Mi"}}}}},
                    SourceRef(f"{name}.yaml"))


def test_datavolumes_are_indexed_per_refs_mapping(tmp_path: Path) -> None:
    """The index of DataVolumes by namespace is reused only for the very mapping it was
    made from: another mapping, or the same one grown, is indexed again."""
    from node.cluster.config import NodeConfig
    from node.cluster.host import NodeHost
    from node.cluster.networks import NetworkMap

    host = NodeHost(NodeConfig("n1", "test:///default", str(tmp_path / "s"),
                               str(tmp_path / "i")), NetworkMap({}))
    first: dict[ObjectKey, Any] = {}
    assert host._datavolumes(first, "team") == []
    disk = _dv("disk")
    second = {disk.key: disk, _dv("elsewhere", "other").key: _dv("elsewhere", "other")}
    assert host._datavolumes(second, "team") == [disk]
    assert host._datavolumes(second, "other")[0].name == "elsewhere"
    more = _dv("more")
    second[more.key] = more
    assert host._datavolumes(second, "team") == [disk, more]


def test_a_rewritten_record_frees_its_old_macs_in_the_index(tmp_path: Path) -> None:
    """The MAC index follows each write by the writer's own MACs only (no scan): a VM
    whose MAC changed frees the old one, keeps the new one, and other VMs' stay."""
    store = IdentityStore(tmp_path)

    def pinned(name: str, mac: str) -> VmSpec:
        domain: dict[str, Any] = {"memory": {"guest": "64Mi"}, "devices": {
            "interfaces": [{"name": "eth0", "masquerade": {}, "macAddress": mac}]}}
        return VmSpec.from_body("team", name, vm_body(domain))

    old, new, theirs = "02:00:00:00:0c:01", "02:00:00:00:0c:02", "02:00:00:00:0c:03"
    store.ensure(_key("other"), pinned("other", theirs))
    store.ensure(_key("web"), pinned("web", old))
    outside = store.macs_of_others(_key("nobody"))
    assert old in outside and theirs in outside
    store.ensure(_key("web"), pinned("web", new), force=True)
    outside = store.macs_of_others(_key("nobody"))
    assert old not in outside and new in outside and theirs in outside
