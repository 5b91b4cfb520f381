"""Safety rule 13 in the pure planner: which files a deleted VM's prune lists, whoever
(desired or live, on any node) references its claims."""

from __future__ import annotations

from typing import Any

from plan_helpers import FP, LIBVIRT

from reconciler.core.model import DiskFile, Manifest, SourceRef
from reconciler.planning.ownership import claim_depth, claim_users
from reconciler.planning.plan import make_plan
from reconciler.planning.plan_model import Observed


def _vm(name: str, *, owns: tuple[str, ...] = (),
        mounts: dict[str, dict[str, Any]] | None = None, delete: bool = False) -> Manifest:
    meta: dict[str, Any] = {"name": name, "namespace": "ns"}
    if delete:
        meta["annotations"] = {"virtsync.io/disk-policy": "Delete"}
    body = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": meta,
            "spec": {"dataVolumeTemplates": [{"metadata": {"name": n}, "spec": {}}
                                             for n in owns],
                     "template": {"spec": {"volumes": [
                         {"name": v, **src} for v, src in (mounts or {}).items()]}}}}
    return Manifest("kubevirt.io/v1", "VirtualMachine", "ns", name, body, SourceRef("x.yaml"))


def _fates(live: list[Observed],
           desired: tuple[Manifest, ...] = ()) -> dict[str, tuple[bool, str]]:
    plan = make_plan(list(desired), live, fingerprints=FP, profile=LIBVIRT)
    (change,) = [c for c in plan.changes if c.is_delete]
    return {d.path: (d.delete, d.reason) for d in change.disks}


def _disk(volume: str, claim: str = "", source: str = "dataVolume") -> DiskFile:
    path = f"/s/ns/claims/{claim}.qcow2" if claim else f"/s/ns/vms/gone/{volume}"
    return DiskFile(volume, source, path, True, claim)


GONE = _vm("gone", owns=("gone-data",), delete=True,
           mounts={"data": {"dataVolume": {"name": "gone-data"}}})


def test_a_live_vm_on_another_node_keeps_the_claim() -> None:
    other = Observed(_vm("far", mounts={"d": {"persistentVolumeClaim": {
        "claimName": "gone-data"}}}), node="n2", running=True)
    gone = Observed(GONE, node="n1", running=False,
                    disks=(_disk("data", "gone-data"), _disk("empty-x.qcow2", source="file")))
    # `far` is live only (another source applied it, on node n2): plan_live leaves it out
    # of the pairs but counts it among the claim's users, as here.
    plan = make_plan([], [gone], fingerprints=FP, profile=LIBVIRT, claim_refs=claim_users(
        [], [gone.manifest, other.manifest]))
    fates = {d.path: (d.delete, d.reason) for d in plan.changes[0].disks}
    assert fates == {"/s/ns/claims/gone-data.qcow2": (False,
                                                      "claim gone-data is in use by "
                                                      "VirtualMachine/ns/far"),
                     "/s/ns/vms/gone/empty-x.qcow2": (True, "its own file")}


def test_a_desired_datavolume_of_that_name_keeps_it_and_unowned_claims_stay() -> None:
    dv = Manifest("cdi.kubevirt.io/v1beta1", "DataVolume", "ns", "gone-data",
                  {"spec": {}}, SourceRef("dv.yaml"))
    gone = Observed(_vm("gone", owns=("gone-data",), delete=True, mounts={
        "data": {"dataVolume": {"name": "gone-data"}},
        "shared": {"persistentVolumeClaim": {"claimName": "common"}}}),
        disks=(_disk("data", "gone-data"), _disk("shared", "common", "persistentVolumeClaim")))
    fates = _fates([gone], (dv,))
    assert fates["/s/ns/claims/gone-data.qcow2"] == (
        False, "claim gone-data is in use by DataVolume/ns/gone-data")
    assert fates["/s/ns/claims/common.qcow2"] == (
        False, "claim common is not owned by this VM (no dataVolumeTemplate of that name)")


def test_nothing_deleted_is_not_data_loss_and_other_namespaces_do_not_count() -> None:
    elsewhere = _vm("far", mounts={"d": {"dataVolume": {"name": "gone-data"}}})
    elsewhere = Manifest(elsewhere.api_version, elsewhere.kind, "other", "far",
                         {**elsewhere.body, "metadata": {"name": "far", "namespace": "other"}},
                         elsewhere.source)
    gone = Observed(GONE, disks=(_disk("data", "gone-data"),))
    plan = make_plan([elsewhere], [gone], fingerprints=FP, profile=LIBVIRT)
    (change,) = [c for c in plan.changes if c.is_delete]
    assert change.deleted_files == ("/s/ns/claims/gone-data.qcow2",)
    assert change.disruption.label == "data-loss"
    keep_all = Observed(GONE, disks=(_disk("data", "gone-data"),))
    user = _vm("user", mounts={"d": {"dataVolume": {"name": "gone-data"}}})
    plan = make_plan([user], [keep_all], fingerprints=FP, profile=LIBVIRT)
    (change,) = [c for c in plan.changes if c.is_delete]
    assert change.deleted_files == () and change.disruption.label == "replace"
    assert "no disk file of its own is deleted (1 kept" in change.cause


def test_claim_depth_puts_owners_before_the_vms_mounting_their_claims() -> None:
    pvc = {"persistentVolumeClaim": {"claimName": "c-own"}}
    dv = {"dataVolume": {"name": "b-own"}}
    vms = [_vm("a", mounts={"x": dv}), _vm("b", owns=("b-own",), mounts={"y": pvc}),
           _vm("c", owns=("c-own",)), _vm("d", owns=("d-own",), mounts={"z": {
               "persistentVolumeClaim": {"claimName": "d-own"}}})]
    depth = claim_depth(vms)
    # c owns what b mounts; b owns what a mounts; d mounting its own claim needs nobody.
    assert depth == {vms[1].key: 1, vms[0].key: 2}
    plan = make_plan(vms, [], fingerprints=FP, profile=LIBVIRT)
    assert [c.key.name for c in plan.changes] == ["c", "d", "b", "a"]


def test_claim_depth_survives_a_cycle() -> None:
    e = _vm("e", owns=("e-own",), mounts={"v": {"dataVolume": {"name": "f-own"}}})
    f = _vm("f", owns=("f-own",), mounts={"v": {"dataVolume": {"name": "e-own"}}})
    assert set(claim_depth([e, f]).values()) <= {1, 2}
