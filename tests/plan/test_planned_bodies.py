"""`PlannedBodies` (reconciler.planning.planned): what a long-lived planner (watch's
resync) keeps between whole plans must answer exactly what planning from scratch
answers, whenever a VM's or its instancetype's manifest is a new object (its file
changed), and shares every secret-free subtree instead of copying bodies."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from plan_helpers import manifests, vm

from reconciler.core.model import Manifest, ObjectKey
from reconciler.core.sensitive import digest_sensitive
from reconciler.planning.planned import PlannedBodies
from reconciler.planning.schedule import NodeCapacity, request_of, schedule
from reconciler.tree.desired import Desired

GIB = 1024 * 1024
NODES = [NodeCapacity("a", {"zone": "x"}, free_kib=4 * GIB),
         NodeCapacity("b", {"zone": "y"}, free_kib=8 * GIB)]


def _desired(ms: list[Manifest]) -> Desired:
    return Desired(tuple(ms), "", "", Path("."))


def _scratch(d: Desired) -> list[Manifest]:
    return [replace(m, body=digest_sensitive(dict(m.body))) for m in d.manifests]


def _sized(name: str, itype: str) -> Manifest:
    body = yaml.safe_load(vm(name))
    dom = body["spec"]["template"]["spec"]["domain"]
    del dom["cpu"], dom["memory"]
    body["spec"]["instancetype"] = {"name": itype}
    return manifests(yaml.safe_dump(body))[0]


def _itype(zone: str, memory: str = "1Gi") -> Manifest:
    doc: dict[str, Any] = {
        "apiVersion": "instancetype.kubevirt.io/v1beta1",
        "kind": "VirtualMachineClusterInstancetype", "metadata": {"name": "small"},
        "spec": {"cpu": {"guest": 1}, "memory": {"guest": memory},
                 "nodeSelector": {"zone": zone}}}
    return manifests(yaml.safe_dump(doc))[0]


def _with_secret(name: str, password: str) -> Manifest:
    body = yaml.safe_load(vm(name))
    tmpl = body["spec"]["template"]["spec"]
    tmpl["domain"]["devices"] = {"disks": [{"name": "ci", "disk": {"bus": "virtio"}}]}
    tmpl["volumes"] = [{"name": "ci", "cloudInitNoCloud": {
        "userData": f"#cloud-config\npassword: {password}\n"}}]
    return manifests(yaml.safe_dump(body))[0]


def test_digested_bodies_follow_each_changed_manifest() -> None:
    bodies = PlannedBodies()
    plain, secret = manifests(vm("plain"))[0], _with_secret("sec", "one")
    trees = [
        [plain, secret],
        [plain, secret],  # unchanged: reused
        [plain, _with_secret("sec", "two")],  # the secret changed (a new manifest)
        [manifests(vm("plain", cores=4))[0], _with_secret("sec", "two")],
        [_with_secret("sec", "two")],  # one left the tree
        [plain, _with_secret("sec", "one")],  # and came back, the old secret again
    ]
    for ms in trees:
        d = _desired(ms)
        got = bodies.of(d)
        assert [m.body for m in got] == [m.body for m in _scratch(d)]
    # Secret-free parts are the tree's own objects, not copies (memory at 10,000 VMs).
    (got,) = bodies.of(_desired([plain]))
    assert got.body["metadata"] is plain.body["metadata"]
    assert got.body["spec"] is not plain.body["spec"]  # holds the cloud-init userData
    body = yaml.safe_load(vm("bare"))
    tmpl = body["spec"]["template"]["spec"]
    del tmpl["volumes"]
    tmpl["domain"]["devices"].pop("disks", None)
    bare = manifests(yaml.safe_dump(body))[0]
    assert bodies.of(_desired([bare]))[0] is bare


def test_placement_demand_follows_a_changed_instancetype() -> None:
    """The VM's file is unchanged; only its instancetype's nodeSelector (then its memory)
    changes: the memo must read the demand again."""
    bodies = PlannedBodies()
    sized = _sized("web", "small")
    for itype in [_itype("x"), _itype("x"), _itype("y"), _itype("y", "6Gi"),
                  _itype("x", "6Gi")]:
        refs: dict[ObjectKey, Manifest] = {sized.key: sized, itype.key: itype}
        bodies.of(_desired([sized, itype]))
        fresh = schedule([sized], {}, NODES, refs)
        assert schedule([sized], {}, NODES, refs, bodies.request) == fresh
        assert bodies.request(sized, refs) == request_of(sized, refs)


def test_placement_demand_follows_a_changed_vm() -> None:
    bodies = PlannedBodies()
    for m in [manifests(vm("db", memory="1Gi"))[0], manifests(vm("db", memory="6Gi"))[0],
              manifests(vm("db", memory="1Gi"))[0]]:
        bodies.of(_desired([m]))
        assert bodies.request(m, {}) == request_of(m, {})
        assert schedule([m], {}, NODES, {}, bodies.request) == schedule([m], {}, NODES, {})
