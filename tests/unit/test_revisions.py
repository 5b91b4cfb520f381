"""VMs are pinned to the instancetype/preference content they are applied with."""

from __future__ import annotations

from typing import Any

from reconciler.core.model import Manifest, ObjectKey, SourceRef
from reconciler.planning.revisions import dependents, revision_name, with_revisions


def m(kind: str, name: str, body: dict[str, Any], ns: str = "") -> Manifest:
    group = "kubevirt.io/v1" if kind == "VirtualMachine" else "instancetype.kubevirt.io/v1beta1"
    return Manifest(group, kind, ns, name, {"metadata": {"name": name}, **body},
                    SourceRef(f"{name}.yaml"))


CLUSTER_IT = m("VirtualMachineClusterInstancetype", "small", {"spec": {"cpu": {"guest": 1}}})
NS_PREF = m("VirtualMachinePreference", "linux", {"spec": {"cpu": {"preferredCPUTopology":
                                                                   "cores"}}}, "prod")


def vm(name: str, spec: dict[str, Any]) -> Manifest:
    return m("VirtualMachine", name, {"spec": spec}, "prod")


def test_revision_names_follow_content() -> None:
    a = revision_name("small", {"cpu": {"guest": 1}})
    assert a.startswith("small-") and len(a) == len("small-") + 10
    assert a == revision_name("small", {"cpu": {"guest": 1}})
    assert a != revision_name("small", {"cpu": {"guest": 2}})


def test_vms_get_revisions_of_what_they_reference() -> None:
    tree = [CLUSTER_IT, NS_PREF,
            vm("a", {"instancetype": {"name": "small"},
                     "preference": {"name": "linux", "kind": "VirtualMachinePreference"}}),
            vm("b", {"instancetype": {"name": "small", "revisionName": "pinned-in-git"}}),
            vm("c", {"instancetype": {"name": "missing"}}),
            vm("d", {"runStrategy": "Halted"})]
    out = {x.name: x for x in with_revisions(tree)}
    assert out["a"].body["spec"]["instancetype"]["revisionName"] == \
        revision_name("small", CLUSTER_IT.body["spec"])
    assert out["a"].body["spec"]["preference"]["revisionName"] == \
        revision_name("linux", NS_PREF.body["spec"])
    assert out["b"].body["spec"]["instancetype"]["revisionName"] == "pinned-in-git"
    assert "revisionName" not in out["c"].body["spec"]["instancetype"]
    assert out["d"] is tree[5]
    assert "revisionName" not in tree[2].body["spec"]["instancetype"]  # inputs untouched


def test_dependents_of_a_changed_instancetype() -> None:
    tree = {x.key: x for x in [CLUSTER_IT, NS_PREF, vm("a", {"instancetype": {"name": "small"}}),
                               vm("b", {"runStrategy": "Halted"})]}
    assert dependents({CLUSTER_IT.key}, tree) == {ObjectKey("VirtualMachine", "prod", "a")}
    assert dependents({ObjectKey("VirtualMachine", "prod", "b")}, tree) == set()
