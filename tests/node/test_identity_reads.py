"""A store reads a record back from memory only while its file is the one it last read or
wrote (inode, size, mtime; issue 13: a 10,000-VM start-up parsed each new record three
more times before its define). Any other write to the file, by another store object or
by hand, is read from disk: a changed identity is never hidden, a damaged record still
fails its VM (rule 17)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from domain_cases import vm_body

from node.identity.cluster_store import ClusterIdentities
from node.identity.node_store import Identity, IdentityStore
from reconciler.core.model import ObjectKey, VirtsyncError
from reconciler.core.vmspec import VmSpec

KEY = ObjectKey("VirtualMachine", "team", "web")
OTHER = Identity("00000000-0000-4000-8000-000000000001", "SERIALOTHER",
                 {"eth0": "02:00:00:00:00:01"}, {"root": "DISKOTHER"})


def _spec(name: str = "web") -> VmSpec:
    domain: dict[str, Any] = {"memory": {"guest": "64Mi"},
                              "devices": {"interfaces": [{"name": "eth0", "masquerade": {}}],
                                          "disks": [{"name": "root"}]}}
    return VmSpec.from_body("team", name, vm_body(domain))


@pytest.mark.parametrize("write", ["ensure", "transaction"])
def test_another_writer_after_ours_is_read_from_disk(tmp_path: Path, write: str) -> None:
    ours, theirs = IdentityStore(tmp_path), IdentityStore(tmp_path)
    if write == "ensure":
        mine = ours.ensure(KEY, _spec())
    else:
        mine = ours.ensure_many([(KEY, _spec())])[KEY]
    assert ours.get(KEY) == mine
    theirs.put(KEY, OTHER)
    assert ours.get(KEY) == OTHER
    # ensure keeps the stored identity (it is not ours any more, it is the store's)
    assert ours.ensure(KEY, _spec()) == OTHER


def test_a_record_rewritten_in_place_is_read_again(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path)
    mine = store.ensure(KEY, _spec())
    path = store.record_path(KEY)
    data = json.loads(path.read_text())
    data["serial"] = "EDITEDBYHANDTOO"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")  # same inode
    assert store.get(KEY) == Identity(mine.uuid, "EDITEDBYHANDTOO", mine.macs,
                                      mine.disk_serials)
    path.write_text("{ not json")
    with pytest.raises(VirtsyncError, match="not valid JSON"):
        store.get(KEY)
    with pytest.raises(VirtsyncError, match="not valid JSON"):
        store.ensure(KEY, _spec())


def test_a_batch_then_each_define_reads_the_same_identities(tmp_path: Path) -> None:
    """The start-up's two passes (one transaction, then `ensure` per define) agree, and
    the second pass reads no record file."""
    cluster = ClusterIdentities(IdentityStore(tmp_path / "state"),
                                {"n1": IdentityStore(tmp_path / "n1")})
    node = cluster.on("n1")
    wanted = [(ObjectKey("VirtualMachine", "team", f"vm{i}"), _spec(f"vm{i}"))
              for i in range(5)]
    first = node.ensure_many(wanted)
    reads: list[Path] = []
    for store in (cluster.cluster, node.local):
        real = store._read

        def counting(path: Path, real: Any = real) -> Identity | None:
            reads.append(path)
            return real(path)  # type: ignore[no-any-return]
        store._read = counting  # type: ignore[method-assign]
    assert {k: node.ensure(k, s) for k, s in wanted} == first
    assert reads == []


def test_record_paths_follow_the_whole_key_and_bad_names_stay_refused(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path)
    a, b = ObjectKey("VirtualMachine", "team", "web"), ObjectKey("VirtualMachine", "ops", "web")
    assert store.ensure(a, _spec()) != store.ensure(b, _spec())
    assert store.record_path(b) == tmp_path / ".virtsync-identity" / "ops" / "web.json"
    assert store.get(a) != store.get(b)
    bad = ObjectKey("VirtualMachine", "team", "../web")
    for _ in range(2):  # refused every time, not remembered
        with pytest.raises(VirtsyncError, match="not a valid object name"):
            store.record_path(bad)
