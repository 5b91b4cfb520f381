"""Capacity (issue 10) through the CLI on libvirt's test driver: placement counts each
node's CPUs (`conn.getInfo()`) times its `cpuOvercommit` minus the vCPUs of its running
domains, beside memory; a VM that fits nowhere is ErrorUnschedulable in plan and status
and never created."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from e2e.test_apply_testdriver import URI, Tree, run, vm
from e2e.test_two_nodes import node_of, plan_json

# The test driver's host: 16 CPUs; its built-in domain `test` runs with 2 vCPUs.


def cluster(tree: Tree, **ratios: float) -> None:
    """Nodes a and b on the one test hypervisor; `ratios`: cpuOvercommit per node."""
    nodes = [{"name": n, "uri": URI, "storageDir": str(tree.storage.parent / f"store-{n}"),
              "imageDir": str(tree.storage.parent / "images"), "memoryMiB": 16384,
              "cpuOvercommit": ratios[n]} for n in ("a", "b")]
    (tree.root / "cluster.yaml").write_text(yaml.safe_dump({
        "apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "e2e"},
        "spec": {"nodes": nodes}}))


def test_vcpus_and_overcommit_decide_the_node_and_too_big_is_unschedulable(
        conn: Any, tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    # a: 16 × 0.5 − 2 = 6 vCPUs free; b: 16 × 1 − 2 = 14. By memory alone a would win
    # (equal memory: the first node in the list).
    cluster(tree, a=0.5, b=1)
    tree.put(vm("big", cores=12))
    (change,) = plan_json(tree, capsys)
    assert change["placement"]["node"] == "b"
    assert run("apply", str(tree.root)) == 0
    assert node_of(conn, "big") == "b"

    # 20 vCPUs fit nowhere now (a: 6, b: 14 − 12 = 2): shown, never created.
    tree.put(vm("huge", cores=20))
    huge = next(c for c in plan_json(tree, capsys) if c["name"] == "huge")
    assert huge["placement"]["node"] is None
    assert huge["placement"]["reason"] == ("0/2 nodes are available: 2 node(s) had "
                                           "insufficient cpu (need 20 vCPU(s))")
    assert run("apply", str(tree.root)) == 1
    assert not [d for d in conn.listAllDomains() if d.name() == "e2e_huge"]
    capsys.readouterr()
    assert run("status", str(tree.root)) in (0, 1)
    assert "ErrorUnschedulable" in capsys.readouterr().out

    # KubeVirt's default ratio (10) would hold it on a: 160 − 2.
    cluster(tree, a=10, b=1)
    huge = next(c for c in plan_json(tree, capsys) if c["name"] == "huge")
    assert huge["placement"]["node"] == "a"
