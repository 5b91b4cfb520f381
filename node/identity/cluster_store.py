"""A VM's identity at cluster scope: it follows the VM from node to node.

The record that counts lives in the reconciler's state directory (`<state dir>/
.virtsync-identity/`, the same record format as a node's store, see node.identity.node_store); each
node's store (`<storageDir>/.virtsync-identity/`) is a cache of the VMs defined there,
written before every define, and the source the cluster store is filled from:

- on first use, every readable node record the cluster store lacks is imported, so MAC
  allocation sees every VM of the cluster (collision-free across nodes) and an
  installation that kept identity per node loses nothing;
- a VM without a cluster record takes the one its node (else any node) holds; two nodes
  holding different ones is an error for that VM, never a guess;
- allocation (and pin checks) happen in the cluster store, also avoiding every MAC the
  target node's store knows (other installations sharing the node);
- deleting a VM with its disks forgets its identity everywhere, so no cache brings it
  back.

So a VM replaced on another node, or whose node lost its storage directory, keeps its
UUID, serial, MACs and disk serials; losing the reconciler host alone loses nothing
either (the node caches refill the cluster store), and what is pinned in git survives
both (see docs/identity.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping, Sequence

from node.identity.node_store import Identity, IdentityStore, LowerCaseMacs
from reconciler.core.model import ObjectKey, VirtsyncError
from reconciler.core.vmspec import VmSpec


class ClusterIdentities:
    """The cluster's identity store plus every node's cache."""

    def __init__(self, cluster: IdentityStore, nodes: Mapping[str, IdentityStore]) -> None:
        self.cluster = cluster
        self.nodes = dict(nodes)
        self._imported = False

    def on(self, node: str) -> NodeIdentities:
        """The view one node's operations use (define, rename, delete)."""
        return NodeIdentities(self, node)

    def import_nodes(self) -> None:
        """Every node record the cluster store lacks (once per process: later records
        are written through the cluster store anyway). A corrupt or contradictory record
        is skipped here and fails only its own VM (see `seed`)."""
        if self._imported:
            return
        keys = sorted({k for store in self.nodes.values() for k, _ in store.items()})
        for key in keys:
            try:
                if self.cluster.get(key) is None:
                    self.seed(key, "")
            except VirtsyncError:
                continue
        self._imported = True

    def seed(self, key: ObjectKey, first: str) -> Identity | None:
        """The VM's cluster record, made from the node caches when the cluster store has
        none yet (node `first` is read first, so its corrupt record fails the VM)."""
        found = self.cluster.get(key)
        if found is not None:
            return found
        order = [n for n in (first, *self.nodes) if n in self.nodes]
        held = [(n, i) for n in dict.fromkeys(order)
                if (i := self.nodes[n].get(key)) is not None]
        if not held:
            return None
        merged = _merge_caches(key, held)
        self.cluster.put(key, merged)
        return merged

    def forget(self, key: ObjectKey) -> bool:
        gone = self.cluster.forget(key)
        for store in self.nodes.values():
            gone = store.forget(key) or gone
        return gone


class NodeIdentities:
    """IdentityStore's verbs for one node, with the cluster store as the truth."""

    def __init__(self, owner: ClusterIdentities, node: str) -> None:
        self.owner = owner
        self.node = node
        self.local = owner.nodes[node]

    def get(self, key: ObjectKey) -> Identity | None:
        self.owner.import_nodes()
        return self.owner.seed(key, self.node)

    def ensure(self, key: ObjectKey, vm: VmSpec, *, force: bool = False,
               reserved_macs: Collection[str] = ()) -> Identity:
        # A corrupt node record fails its VM here, as the cluster's would: it is left for
        # the operator, never written over (the other VMs go on).
        cached = self.local.get(key)
        self.owner.import_nodes()
        self.owner.seed(key, self.node)
        view = self.local.lower_case_macs_of_others(key)
        taken: Collection[str] = LowerCaseMacs({m.lower() for m in reserved_macs}, view) \
            if view is not None else {*reserved_macs, *self.local.macs_of_others(key)}
        ident = self.owner.cluster.ensure(key, vm, force=force, reserved_macs=taken)
        if cached != ident:  # the node's copy, written before the domain is defined
            self.local.put(key, ident, copy=True)  # the cluster record above is durable
        return ident

    def ensure_many(self, wanted: Sequence[tuple[ObjectKey, VmSpec]]) -> dict[ObjectKey, Identity]:
        """`ensure` for several VMs with their records made durable together (issue 13):
        one transaction on the cluster store, then one on this node's cache, both on disk
        when this returns; their identities. A VM whose ensure fails is left out: its own
        `ensure` (at its define) reports it, as before."""
        out: dict[ObjectKey, Identity] = {}
        with self.local.transaction(), self.owner.cluster.transaction():
            # The cluster store's block ends first: the record that counts is on disk
            # before its node copy.
            for key, vm in wanted:
                with contextlib.suppress(VirtsyncError):
                    out[key] = self.ensure(key, vm)
        return out

    def move(self, old: ObjectKey, new: ObjectKey) -> Identity | None:
        """Rule 17 (rename): the cluster record first, then this node's cache."""
        self.owner.seed(old, self.node)
        ident = self.owner.cluster.move(old, new)
        self.local.move(old, new)
        return ident

    def forget(self, key: ObjectKey) -> bool:
        return self.owner.forget(key)


def _merge_caches(key: ObjectKey, held: list[tuple[str, Identity]]) -> Identity:
    """One identity from several nodes' caches. A node the VM left keeps an older copy
    (without NICs or disks added since), so entries are united; two different values for
    one field is an error for this VM, never a guess."""
    uuids = {i.uuid for _, i in held}
    serials = {i.serial for _, i in held}
    macs: dict[str, str] = {}
    disks: dict[str, str] = {}
    clash = len(uuids) > 1 or len(serials) > 1
    for _, ident in held:
        for target, values in ((macs, ident.macs), (disks, ident.disk_serials)):
            for name, value in values.items():
                clash = clash or target.setdefault(name, value) != value
    if clash:
        where = ", ".join(n for n, _ in held)
        raise VirtsyncError(f"{key}: different identities stored on nodes {where}; "
                            "pin the right one in git")
    return Identity(uuids.pop(), serials.pop(), macs, disks)
