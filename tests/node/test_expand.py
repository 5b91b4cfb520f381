"""Instancetype/preference expansion (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from backend_helpers import manifest, vm_body

from reconciler.core.expand import expand, spread_vcpus
from reconciler.core.model import Manifest, VirtsyncError
from reconciler.core.vmspec import VmSpec

IT_API = "instancetype.kubevirt.io/v1beta1"


def it(name: str, spec: dict[str, Any], namespace: str = "") -> Manifest:
    kind = "VirtualMachineInstancetype" if namespace else "VirtualMachineClusterInstancetype"
    return manifest({"metadata": {"name": name, "namespace": namespace}, "spec": spec},
                    kind, IT_API)


def pref(name: str, spec: dict[str, Any], namespace: str = "") -> Manifest:
    kind = "VirtualMachinePreference" if namespace else "VirtualMachineClusterPreference"
    return manifest({"metadata": {"name": name, "namespace": namespace}, "spec": spec},
                    kind, IT_API)


def bare_vm(**refs: Any) -> Manifest:
    body = vm_body()
    domain = body["spec"]["template"]["spec"]["domain"]
    del domain["cpu"], domain["memory"]
    body["spec"].update(refs)
    return manifest(body)


def refs(*ms: Manifest) -> dict[Any, Manifest]:
    return {m.key: m for m in ms}


def test_cluster_instancetype_sets_cpu_memory_and_selector() -> None:
    t = it("u1.medium", {"cpu": {"guest": 4, "model": "host-model"},
                         "memory": {"guest": "1Gi"}, "nodeSelector": {"zone": "a"}})
    body = expand(bare_vm(instancetype={"name": "u1.medium"}), refs(t))
    spec = VmSpec.from_body("default", "web", body)
    assert (spec.cpu.sockets, spec.cpu.cores, spec.cpu.model) == (4, 1, "host-model")
    assert spec.memory_kib == 1024 * 1024
    assert body["spec"]["template"]["spec"]["nodeSelector"] == {"zone": "a"}


def test_namespaced_instancetype_and_preference_topology() -> None:
    t = it("small", {"cpu": {"guest": 2}, "memory": {"guest": "512Mi"}}, "default")
    p = pref("cores", {"cpu": {"preferredCPUTopology": "preferCores"}}, "default")
    vm = bare_vm(instancetype={"name": "small", "kind": "VirtualMachineInstancetype"},
                 preference={"name": "cores", "kind": "virtualmachinepreference"})
    spec = VmSpec.from_body("default", "web", expand(vm, refs(t, p)))
    assert (spec.cpu.sockets, spec.cpu.cores, spec.cpu.threads) == (1, 2, 1)


def test_preference_fills_defaults_but_vm_values_win() -> None:
    p = pref("virtio", {
        "devices": {"preferredDiskBus": "sata", "preferredInterfaceModel": "e1000e"},
        "firmware": {"preferredUseEfi": True, "preferredUseSecureBoot": False},
        "machine": {"preferredMachineType": "pc"},
        "preferredTerminationGracePeriodSeconds": 42,
    })
    body = vm_body(grace=None)
    body["spec"]["template"]["spec"]["domain"]["devices"]["disks"].append(
        {"name": "extra", "disk": {}})
    body["spec"]["template"]["spec"]["volumes"].append(
        {"name": "extra", "emptyDisk": {"capacity": "1Mi"}})
    body["spec"]["preference"] = {"name": "virtio"}
    spec = VmSpec.from_body("default", "web", expand(manifest(body), refs(p)))
    assert [d.bus for d in spec.disks] == ["virtio", "sata"]  # the VM pinned virtio on #1
    assert spec.interfaces[0].model == "e1000e"
    assert (spec.firmware.bootloader, spec.firmware.secure_boot) == ("efi", False)
    assert spec.machine_type == "pc"
    assert spec.termination_grace_seconds == 42


def test_expand_does_not_modify_the_manifest() -> None:
    t = it("t", {"cpu": {"guest": 1}, "memory": {"guest": "1Gi"}})
    vm = bare_vm(instancetype={"name": "t"})
    before = repr(vm.body)
    expand(vm, refs(t))
    assert repr(vm.body) == before


def test_conflict_with_instancetype_names_the_field() -> None:
    t = it("t", {"cpu": {"guest": 1}, "memory": {"guest": "1Gi"}})
    body = vm_body()
    body["spec"]["instancetype"] = {"name": "t"}
    with pytest.raises(VirtsyncError, match=r"^spec\.template\.spec\.domain\.cpu\.cores: "
                                            "conflicts with the selected instancetype"):
        expand(manifest(body), refs(t))


def test_missing_reference_names_field_and_namespace() -> None:
    with pytest.raises(VirtsyncError, match=r"spec\.instancetype\.name: "
                                            "VirtualMachineInstancetype 'x' not found in "
                                            "namespace default"):
        expand(bare_vm(instancetype={"name": "x", "kind": "VirtualMachineInstancetype"}), {})


def test_preference_requirements_are_checked() -> None:
    t = it("t", {"cpu": {"guest": 1}, "memory": {"guest": "512Mi"}})
    p = pref("big", {"requirements": {"cpu": {"guest": 2}}})
    with pytest.raises(VirtsyncError, match="requires at least 2 vCPUs"):
        expand(bare_vm(instancetype={"name": "t"}, preference={"name": "big"}), refs(t, p))


def test_spread_vcpus() -> None:
    assert spread_vcpus(4, "sockets") == {"sockets": 4, "cores": 1, "threads": 1}
    assert spread_vcpus(4, "threads") == {"sockets": 1, "cores": 1, "threads": 4}
    assert spread_vcpus(4, "spread") == {"sockets": 2, "cores": 2, "threads": 1}
    assert spread_vcpus(3, "spread") == {"sockets": 3, "cores": 1, "threads": 1}
