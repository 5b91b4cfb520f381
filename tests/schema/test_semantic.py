"""semantic: per-document rules (exact path and rule), facts, and tree-wide uniqueness."""

from __future__ import annotations

from typing import Any

import pytest
from schema_helpers import devices, manifest, vm, vmi_spec

from reconciler.check.schema import check_schema
from reconciler.check.semantic import check_manifest, check_unique, facts
from reconciler.core.model import Issue, ManifestFacts, ObjectKey, SourceRef, UniqueClaim

DOMAIN = ("spec", "template", "spec", "domain")
DEVICES = (*DOMAIN, "devices")
VMI = ("spec", "template", "spec")


def only(body: Any) -> Issue:
    m = manifest(body)
    assert check_schema(m) == []  # semantic checks run on schema-valid documents only
    found = check_manifest(m)
    assert len(found) == 1, found
    return found[0]


def test_base_vm_has_no_semantic_issues() -> None:
    assert check_manifest(manifest(vm())) == []


def test_disk_without_volume() -> None:
    issue = only(vm(lambda b: devices(b)["disks"][1].update(name="cloud-init")))
    assert issue == Issue((*DEVICES, "disks", 1, "name"),
                          'disk "cloud-init" has no volume of that name in '
                          'spec.template.spec.volumes; did you mean "cloudinit"?',
                          "semantic.disk-volume-missing")


def test_volume_without_disk_is_legal_like_kubevirt_defaults() -> None:
    def extra(b: Any) -> None:
        vmi_spec(b)["volumes"].append({"name": "scratch", "emptyDisk": {"capacity": "1Gi"}})

    assert check_manifest(manifest(vm(extra))) == []


def test_interface_without_network() -> None:
    def rename(b: Any) -> None:
        devices(b)["interfaces"].append({"name": "storage", "bridge": {}})

    issue = only(vm(rename))
    assert (issue.path, issue.rule) == ((*DEVICES, "interfaces", 1, "name"),
                                        "semantic.interface-network-missing")


def test_network_without_interface() -> None:
    def extra(b: Any) -> None:
        vmi_spec(b)["networks"].append({"name": "storage", "multus": {"networkName": "s"}})

    issue = only(vm(extra))
    assert issue == Issue((*VMI, "networks", 1, "name"),
                          'network "storage" is not used by any interface',
                          "semantic.network-unused")


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda b: devices(b)["disks"].append({"name": "root", "cdrom": {"bus": "sata"}}),
         (*DEVICES, "disks", 2, "name")),
        (lambda b: vmi_spec(b)["volumes"].append({"name": "root", "emptyDisk": {
            "capacity": "1Gi"}}), (*VMI, "volumes", 2, "name")),
    ],
    ids=["disk", "volume"],
)
def test_duplicate_names_point_at_the_second(mutate: Any, path: tuple[str | int, ...]) -> None:
    issue = only(vm(mutate))
    assert (issue.path, issue.rule) == (path, "semantic.duplicate-name")
    assert "(also " in issue.message


def test_duplicate_interface_and_network_names() -> None:
    def dup(b: Any) -> None:
        devices(b)["interfaces"].append({"name": "default", "bridge": {}})
        vmi_spec(b)["networks"].append({"name": "default", "multus": {"networkName": "x"}})

    found = check_manifest(manifest(vm(dup)))
    assert [(i.path, i.rule) for i in found] == [
        ((*DEVICES, "interfaces", 1, "name"), "semantic.duplicate-name"),
        ((*VMI, "networks", 1, "name"), "semantic.duplicate-name"),
    ]


def test_running_and_run_strategy() -> None:
    issue = only(vm(lambda b: b["spec"].update(running=False)))
    assert (issue.path, issue.rule) == (("spec", "running"), "semantic.running-and-runstrategy")
    # running alone is fine (deprecated, still served)
    assert check_manifest(manifest(vm(lambda b: (b["spec"].pop("runStrategy"),
                                                 b["spec"].update(running=True))))) == []


def test_instancetype_conflicts() -> None:
    def with_type(b: Any) -> None:
        b["spec"]["instancetype"] = {"kind": "VirtualMachineClusterInstancetype",
                                     "name": "u1.medium"}
        vmi_spec(b)["domain"]["resources"] = {"requests": {"memory": "1Gi"}}

    found = check_manifest(manifest(vm(with_type)))
    assert [(i.path, i.rule) for i in found] == [
        ((*DOMAIN, "cpu", "cores"), "semantic.instancetype-conflict"),
        ((*DOMAIN, "resources", "requests", "memory"), "semantic.instancetype-conflict"),
    ]
    assert 'instancetype "u1.medium"' in found[0].message


def test_boot_order_unique_across_disks_and_interfaces() -> None:
    def orders(b: Any) -> None:
        devices(b)["disks"][0]["bootOrder"] = 1
        devices(b)["interfaces"][0]["bootOrder"] = 1

    issue = only(vm(orders))
    assert (issue.path, issue.rule) == ((*DEVICES, "interfaces", 0, "bootOrder"),
                                        "semantic.duplicate-boot-order")
    assert issue.message == ("bootOrder 1 is already used by "
                             "spec.template.spec.domain.devices.disks[0]")
    issue = only(vm(lambda b: devices(b)["disks"][0].update(bootOrder=0)))
    assert issue.rule == "semantic.boot-order-invalid"


def test_one_pod_network_only() -> None:
    def two(b: Any) -> None:
        vmi_spec(b)["networks"].append({"name": "second", "pod": {}})
        devices(b)["interfaces"].append({"name": "second", "bridge": {}})

    issue = only(vm(two))
    assert (issue.path, issue.rule) == ((*VMI, "networks", 1, "pod"),
                                        "semantic.multiple-pod-networks")


def test_masquerade_needs_pod_network() -> None:
    def multus(b: Any) -> None:
        vmi_spec(b)["networks"][0] = {"name": "default", "multus": {"networkName": "prod"}}

    issue = only(vm(multus))
    assert (issue.path, issue.rule) == ((*DEVICES, "interfaces", 0, "masquerade"),
                                        "semantic.masquerade-needs-pod-network")


def test_one_target_per_disk_one_source_per_volume_one_binding_per_interface() -> None:
    issue = only(vm(lambda b: devices(b)["disks"][0].update(cdrom={})))
    assert (issue.path, issue.rule) == ((*DEVICES, "disks", 0, "cdrom"),
                                        "semantic.disk-multiple-targets")
    issue = only(vm(lambda b: vmi_spec(b)["volumes"][0].update(emptyDisk={"capacity": "1Gi"})))
    assert (issue.path, issue.rule) == ((*VMI, "volumes", 0, "emptyDisk"),
                                        "semantic.volume-multiple-sources")
    issue = only(vm(lambda b: devices(b)["interfaces"][0].update(bridge={})))
    assert (issue.path, issue.rule) == ((*DEVICES, "interfaces", 0, "bridge"),
                                        "semantic.interface-multiple-bindings")


def test_null_lists_are_tolerated() -> None:
    def nulls(b: Any) -> None:
        devices(b).update(disks=None, interfaces=None)
        vmi_spec(b).update(volumes=None, networks=None)

    assert check_manifest(manifest(vm(nulls))) == []


def test_other_kinds_have_no_semantic_rules() -> None:
    dv = {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
          "metadata": {"name": "d"}, "spec": {}}
    assert check_manifest(manifest(dv)) == []
    # A DataVolume claims its name per namespace, like a VM's dataVolumeTemplate (rule 13).
    assert facts(manifest(dv)).claims == (
        UniqueClaim("object", "DataVolume/default/d", ("metadata", "name")),
        UniqueClaim("DataVolume", "default/d", ("metadata", "name")))


def test_facts_normalize_identity() -> None:
    def upper(b: Any) -> None:
        devices(b)["interfaces"][0]["macAddress"] = "52-54-00-AB-CD-EF"
        vmi_spec(b)["domain"]["firmware"]["uuid"] = "5D307CA9-B3EF-428C-8861-06E72D69F223"

    f = facts(manifest(vm(upper), file="a.yaml", doc=2))
    assert f.key == ObjectKey("VirtualMachine", "prod", "web-01")
    assert f.source == SourceRef("a.yaml", 2)
    assert f.claims == (
        UniqueClaim("object", "VirtualMachine/prod/web-01", ("metadata", "name")),
        UniqueClaim("firmware uuid", "5d307ca9-b3ef-428c-8861-06e72d69f223",
                    (*DOMAIN, "firmware", "uuid")),
        UniqueClaim("firmware serial", "WEB01-SERIAL", (*DOMAIN, "firmware", "serial")),
        UniqueClaim("MAC address", "52:54:00:ab:cd:ef",
                    (*DEVICES, "interfaces", 0, "macAddress")),
        UniqueClaim("disk serial", "ROOT-0001", (*DEVICES, "disks", 0, "serial")),
    )


def _other(name: str) -> Any:
    def change(b: Any) -> None:
        b["metadata"]["name"] = name
    return change


def test_unique_across_tree_reports_every_later_claim_in_file_order() -> None:
    first = facts(manifest(vm(), file="b.yaml"))
    # a.yaml sorts first, so it owns the values even though it is passed last.
    twin = facts(manifest(vm(_other("web-02")), file="a.yaml", doc=1))
    same = facts(manifest(vm(), file="c.yaml"))
    found = check_unique([first, same, twin])
    rules = [(ref, issue.rule) for ref, issue in found]
    assert rules == [
        (SourceRef("b.yaml"), "semantic.duplicate-uuid"),
        (SourceRef("b.yaml"), "semantic.duplicate-serial"),
        (SourceRef("b.yaml"), "semantic.duplicate-mac"),
        (SourceRef("b.yaml"), "semantic.duplicate-disk-serial"),
        (SourceRef("c.yaml"), "semantic.duplicate-object"),
        (SourceRef("c.yaml"), "semantic.duplicate-uuid"),
        (SourceRef("c.yaml"), "semantic.duplicate-serial"),
        (SourceRef("c.yaml"), "semantic.duplicate-mac"),
        (SourceRef("c.yaml"), "semantic.duplicate-disk-serial"),
    ]
    mac = found[2][1]
    assert mac.path == (*DEVICES, "interfaces", 0, "macAddress")
    assert mac.message == ("MAC address 52:54:00:12:34:56 is already used by "
                           "VirtualMachine/prod/web-02 (a.yaml, document 2)")
    assert found[4][1] == Issue(("metadata", "name"),
                                "VirtualMachine/prod/web-01 is defined twice; first in b.yaml",
                                "semantic.duplicate-object")


def test_mac_duplicate_inside_one_vm() -> None:
    def two_nics(b: Any) -> None:
        devices(b)["interfaces"].append({"name": "lan", "bridge": {},
                                         "macAddress": "52:54:00:12:34:56"})
        vmi_spec(b)["networks"].append({"name": "lan", "multus": {"networkName": "lan"}})

    found = check_unique([facts(manifest(vm(two_nics)))])
    assert len(found) == 1
    assert found[0][1].path == (*DEVICES, "interfaces", 1, "macAddress")
    assert "spec.template.spec.domain.devices.interfaces[0].macAddress of this object" in (
        found[0][1].message)


def test_distinct_objects_have_no_conflicts() -> None:
    def distinct(b: Any) -> None:
        b["metadata"]["name"] = "web-02"
        vmi_spec(b)["domain"]["firmware"] = {}
        devices(b)["interfaces"][0].pop("macAddress")
        devices(b)["disks"][0].pop("serial")

    assert check_unique([facts(manifest(vm())), facts(manifest(vm(distinct)))]) == []
    assert check_unique([]) == []
    assert check_unique([ManifestFacts(ObjectKey("Cluster", "", "local"), SourceRef("c"))]) == []


def test_duplicate_in_the_same_file_names_the_document() -> None:
    first = facts(manifest(vm(), file="vms.yaml", doc=0))
    second = facts(manifest(vm(_other("web-02")), file="vms.yaml", doc=1))
    found = check_unique([second, first])
    assert {ref for ref, _ in found} == {SourceRef("vms.yaml", 1)}
    assert found[0][1].message == ("firmware uuid 5d307ca9-b3ef-428c-8861-06e72d69f223 is "
                                   "already used by VirtualMachine/prod/web-01 "
                                   "(document 1 of this file)")
