"""reconciler.core.vmspec.VmSpec as the one typed view of a VM body: the parts the
planner, apply and the libvirt backend read (run strategy, grace period, placement
inputs, owned claims), each with a second, different case."""

from __future__ import annotations

from typing import Any

import pytest

from node.lifecycle.status import DomainView, RuntimeRecord, unplaced_status, vm_status
from node.storage.disks import claim_sizes
from reconciler.core.model import (
    Manifest,
    PrintableStatus,
    SourceRef,
    VirtsyncError,
    format_path,
)
from reconciler.core.power import RunStrategy
from reconciler.core.quantity import byte_size
from reconciler.core.status import VMStatus
from reconciler.core.vmspec import VmSpec
from reconciler.planning.normalize import normalize
from reconciler.planning.schedule import request_of


def body(spec: dict[str, Any] | None = None, **tmpl: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                           "metadata": {"name": "web", "namespace": "prod"},
                           "spec": dict(spec or {})}
    out["spec"]["template"] = {"spec": {"domain": {"memory": {"guest": "64Mi"}}, **tmpl}}
    return out


def view(b: dict[str, Any]) -> VmSpec:
    return VmSpec("prod", "web", b)


def manifest(b: dict[str, Any]) -> Manifest:
    return Manifest("kubevirt.io/v1", "VirtualMachine", "prod", "web", b, SourceRef("vm.yaml"))


# --- run strategy: one mapping for the view, the planner and normalize -------------------

@pytest.mark.parametrize(("spec", "expected"), [
    ({"running": True}, RunStrategy.ALWAYS),
    ({"running": False}, RunStrategy.HALTED),
    ({}, RunStrategy.HALTED),
    ({"runStrategy": "Manual"}, RunStrategy.MANUAL),
    ({"runStrategy": "RerunOnFailure"}, RunStrategy.RERUN_ON_FAILURE),
])
def test_run_strategy_is_decided_once(spec: dict[str, Any], expected: RunStrategy) -> None:
    b = body(spec)
    assert view(b).run_strategy is expected
    assert normalize("VirtualMachine", b)["spec"]["runStrategy"] == expected.value
    assert request_of(manifest(b), {}).will_run is (
        expected in (RunStrategy.ALWAYS, RunStrategy.RERUN_ON_FAILURE))


def test_unknown_run_strategy_is_none_and_kept_by_normalize() -> None:
    b = body({"runStrategy": "Sometimes"})
    assert view(b).run_strategy is None
    assert normalize("VirtualMachine", b)["spec"]["runStrategy"] == "Sometimes"


# --- grace period: absent vs 0 ---------------------------------------------------------

def test_grace_period_absent_is_kubevirts_default() -> None:
    vm = view(body())
    assert vm.grace_period is None and vm.termination_grace_seconds == 180


def test_grace_period_zero_is_zero_not_the_default() -> None:
    vm = view(body(terminationGracePeriodSeconds=0))
    assert vm.grace_period == 0 and vm.termination_grace_seconds == 0
    assert view(body(terminationGracePeriodSeconds=45)).termination_grace_seconds == 45


def test_grace_period_of_the_wrong_shape_reads_as_absent() -> None:
    assert view(body(terminationGracePeriodSeconds=True)).grace_period is None
    assert VmSpec("ns", "dv", {"spec": {"pvc": {}}}).grace_period is None  # not a VM


# --- placement inputs ------------------------------------------------------------------

def test_node_selector_and_affinity_terms() -> None:
    term = {"matchExpressions": [{"key": "gen", "operator": "Exists"}]}
    vm = view(body(nodeSelector={"zone": "a", "rack": 7}, affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [term, "not-a-term"]}}}))
    assert vm.node_selector == {"zone": "a", "rack": "7"}
    assert vm.required_node_terms == (term,)
    bare = view(body())
    assert bare.node_selector == {} and bare.required_node_terms == ()


def test_the_vms_own_selector_wins_over_its_instancetypes() -> None:
    b = body(nodeSelector={"zone": "a"})
    b["spec"]["instancetype"] = {"name": "big"}
    del b["spec"]["template"]["spec"]["domain"]["memory"]
    itype = Manifest("instancetype.kubevirt.io/v1beta1", "VirtualMachineClusterInstancetype",
                     "", "big", {"spec": {"nodeSelector": {"zone": "b", "disk": "ssd"},
                                          "memory": {"guest": "2Gi"}}}, SourceRef("it.yaml"))
    req = request_of(manifest(b), {itype.key: itype})
    assert req.selector == {"zone": "a", "disk": "ssd"}
    assert req.memory_kib == 2 * 1024 * 1024  # from the instancetype: the VM sets none


@pytest.mark.parametrize(("domain", "expected"), [
    ({"memory": {"guest": "1Gi"}, "resources": {"requests": {"memory": "2Gi"}}}, "1Gi"),
    ({"resources": {"requests": {"memory": "2Gi"}}}, "2Gi"),
    ({}, None),
])
def test_declared_memory(domain: dict[str, Any], expected: str | None) -> None:
    b = body()
    b["spec"]["template"]["spec"]["domain"] = domain
    assert view(b).declared_memory == expected


def test_host_disk_paths() -> None:
    vols = [{"name": "a", "hostDisk": {"path": "/srv/a.img", "type": "Disk"}},
            {"name": "b", "persistentVolumeClaim": {"claimName": "b"}},
            {"name": "c", "hostDisk": {"path": "/srv/c.img", "type": "DiskOrCreate"}}]
    assert view(body(volumes=vols)).host_disk_paths == ("/srv/a.img", "/srv/c.img")
    where = [format_path(w) for _, w in view(body(volumes=vols)).host_disks]
    assert where == ["spec.template.spec.volumes[0].hostDisk.path",
                     "spec.template.spec.volumes[2].hostDisk.path"]
    assert view(body(volumes=vols[1:2])).host_disk_paths == ()


# --- owned claims: storage vs pvc, and where an error points ---------------------------

def test_claim_sizes_read_storage_and_pvc_templates() -> None:
    b = body({"dataVolumeTemplates": [
        {"metadata": {"name": "a"}, "spec": {"storage": {"resources": {"requests": {
            "storage": "1Gi"}}}}},
        {"metadata": {"name": "b"}, "spec": {"pvc": {"resources": {"requests": {
            "storage": "1e3"}}}}},
        {"metadata": {}, "spec": {"storage": {}}},  # no name: not a claim the VM owns
    ]})
    vm = view(b)
    assert [t.name for t in vm.data_volume_templates] == ["a", "b"]
    assert claim_sizes(vm) == {"a": 1 << 30, "b": 1000}


def test_claim_size_error_names_the_template() -> None:
    b = body({"dataVolumeTemplates": [
        {"spec": {"storage": {}}},  # unnamed: skipped, but it still counts in the path
        {"metadata": {"name": "a"}, "spec": {"storage": {}}},
        {"metadata": {"name": "b"}, "spec": {"pvc": {"resources": {"requests": {
            "storage": "lots"}}}}},
    ]})
    with pytest.raises(VirtsyncError,
                       match=r"^spec\.dataVolumeTemplates\[2\]\.spec\.pvc\.resources\."
                             r"requests\.storage: not a quantity"):
        claim_sizes(view(b))


# --- one quantity parser, errors name the field ----------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("1Gi", 1 << 30), ("1e3", 1000), ("1.5Ki", 1536), ("0.5", 1), (512, 512), ("1k", 1000),
])
def test_byte_size(value: object, expected: int) -> None:
    assert byte_size(value, ("x",)) == expected


@pytest.mark.parametrize("value", ["-1Gi", "lots", True, 1.5, None, "1e999"])
def test_byte_size_refuses_naming_the_field(value: object) -> None:
    with pytest.raises(VirtsyncError, match=r"^spec\.size: "):
        byte_size(value, ("spec", "size"))


# --- cheap to build, parsed once ----------------------------------------------------

def test_a_view_parses_nothing_until_a_node_part_is_read() -> None:
    b = body()
    del b["spec"]["template"]["spec"]["domain"]["memory"]  # left to an instancetype
    vm = view(b)  # the planner's way in: no error
    assert vm.node_selector == {}
    with pytest.raises(VirtsyncError, match=r"memory\.guest"):
        _ = vm.memory_kib
    with pytest.raises(VirtsyncError, match=r"memory\.guest"):
        VmSpec.from_body("prod", "web", b)  # the node's way in parses every part now


def test_node_parts_are_parsed_once() -> None:
    vm = VmSpec.from_body("prod", "web", body())
    assert vm.disks is vm.disks and vm.cpu is vm.cpu and vm.template_spec is vm.template_spec


# --- the node reports the core's VMStatus ----------------------------------------------

def test_node_status_is_the_cores_vmstatus_with_its_creation_time() -> None:
    import libvirt

    running = vm_status(DomainView(libvirt.VIR_DOMAIN_RUNNING, 1, "h", "h",
                                   RuntimeRecord(created=1700000000.0)), "n1", 0.0)
    assert isinstance(running, VMStatus) and running.created_at == 1700000000.0
    assert running.node == "n1" and running.ready
    never = vm_status(DomainView(libvirt.VIR_DOMAIN_SHUTOFF, 0, "h", None), "n1", 0.0)
    assert never.created_at is None and not never.ready
    unplaced = unplaced_status(PrintableStatus.ERROR_UNSCHEDULABLE, "0/1 nodes")
    assert isinstance(unplaced, VMStatus) and unplaced.conditions[0].message == "0/1 nodes"
