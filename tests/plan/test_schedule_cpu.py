"""Capacity by vCPUs (issue 10): a node's free vCPUs (its CPUs × cpuOvercommit minus its
running domains' vCPUs) bound placement beside memory. Pure tables."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from plan_helpers import manifests, vm

from node.cluster.config import parse_cluster
from reconciler.core.model import ObjectKey, VirtsyncError
from reconciler.planning.schedule import NodeCapacity, Request, place, request_of, schedule

GIB = 1024 * 1024


def node(name: str, vcpus: int | None, kib: int = 4 * GIB) -> NodeCapacity:
    return NodeCapacity(name, {}, free_kib=kib, free_vcpus=vcpus)


@pytest.mark.parametrize(("free", "kib", "want", "run", "placed", "why"), [
    (None, 4 * GIB, 64, True, "a", ""),  # not measured (a backend without CPU facts)
    (4, 4 * GIB, 4, True, "a", ""),  # exactly fits
    (3, 4 * GIB, 4, True, None, "1 node(s) had insufficient cpu (need 4 vCPU(s))"),
    (3, 4 * GIB, 4, False, "a", ""),  # stays off: only needs a matching node
    (0, GIB // 2, 4, True, None, "insufficient memory (need 1024 MiB)"),  # memory first
])
def test_free_vcpus_bound_placement(free: int | None, kib: int, want: int, run: bool,
                                    placed: str | None, why: str) -> None:
    got = place([node("a", free, kib)], Request(memory_kib=GIB, vcpus=want, will_run=run))
    assert got.node == placed
    assert why in got.reason


def test_vms_placed_in_one_plan_count_their_vcpus_against_each_other() -> None:
    # Two 2-vCPU VMs (plan_helpers' default), nodes with 3 free vCPUs each: one per node.
    vms = manifests("---\n".join([vm("p"), vm("q")]))
    out = schedule(vms, {}, [node("b", 3), node("c", 3)], {})
    assert sorted(p.node or "" for p in out.values()) == ["b", "c"]
    three = manifests("---\n".join(vm(n) for n in "pqr"))
    placed = schedule(three, {}, [node("b", 3), node("c", 3)], {})
    assert "insufficient cpu" in placed[ObjectKey("VirtualMachine", "prod", "r")].reason


def _itype(guest: int) -> Any:
    return manifests(yaml.safe_dump({
        "apiVersion": "instancetype.kubevirt.io/v1beta1",
        "kind": "VirtualMachineClusterInstancetype", "metadata": {"name": "big"},
        "spec": {"cpu": {"guest": guest}, "memory": {"guest": "1Gi"}}}))[0]


def test_request_counts_topology_or_the_instancetypes_guest_cpus() -> None:
    (m,) = manifests(vm("w", cores=3))
    assert request_of(m, {}).vcpus == 3  # sockets × cores × threads
    body = yaml.safe_load(vm("w"))
    dom = body["spec"]["template"]["spec"]["domain"]
    del dom["cpu"], dom["memory"]
    body["spec"]["instancetype"] = {"name": "big"}
    (m,) = manifests(yaml.safe_dump(body))
    it = _itype(6)
    assert request_of(m, {it.key: it}).vcpus == 6


@pytest.mark.parametrize(("extra", "cpu", "memory", "error"), [
    ({}, 10.0, 1.0, None),  # KubeVirt's defaults: cpuAllocationRatio 10, memory 100%
    ({"cpuOvercommit": 4, "memoryOvercommit": 1.5}, 4.0, 1.5, None),
    ({"cpuOvercommit": 0}, 0, 0, "spec.nodes[0].cpuOvercommit: expected a positive number"),
    ({"memoryOvercommit": "2"}, 0, 0, "memoryOvercommit: expected a positive number"),
    ({"cpuOvercommit": True}, 0, 0, "cpuOvercommit: expected a positive number"),
])
def test_overcommit_ratios_in_the_cluster_config(extra: dict[str, Any], cpu: float,
                                                 memory: float, error: str | None) -> None:
    body = {"spec": {"nodes": [{"name": "a", "uri": "test:///default", **extra}]}}
    if error:
        with pytest.raises(VirtsyncError, match=error.replace("[", r"\[").replace("]", r"\]")):
            parse_cluster(body, "cluster.yaml")
        return
    (n,) = parse_cluster(body, "cluster.yaml").nodes
    assert (n.cpu_overcommit, n.memory_overcommit) == (cpu, memory)
