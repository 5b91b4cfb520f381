"""The placement step (pure, reconciler.planning.schedule): node selector, required node
affinity, cordoned nodes, free memory, stickiness, reasons."""

from __future__ import annotations

from typing import Any

import yaml
from plan_helpers import manifests, vm

from reconciler.core.model import ObjectKey
from reconciler.planning.schedule import NodeCapacity, Request, place, request_of, schedule

GIB = 1024 * 1024
A = NodeCapacity("a", {"zone": "x", "disk": "ssd", "gen": "3"}, free_kib=2 * GIB)
B = NodeCapacity("b", {"zone": "y", "gen": "5"}, free_kib=4 * GIB)
C = NodeCapacity("c", {"zone": "y"}, free_kib=4 * GIB)


def req(**kw: Any) -> Request:
    return Request(**{"memory_kib": 1024, **kw})


def test_most_free_memory_wins_ties_by_config_order() -> None:
    assert place([A, B, C], req()).node == "b"


def test_selector_filters_nodes() -> None:
    assert place([A, B], req(selector={"zone": "x"})).node == "a"


def test_memory_filters_nodes_only_when_the_vm_will_run() -> None:
    need = 3 * GIB
    assert place([A, B], req(selector={"zone": "x"}, memory_kib=need)).node is None
    assert place([A, B], req(selector={"zone": "x"}, memory_kib=need, will_run=False)
                 ).node == "a"


def test_reason_counts_each_cause() -> None:
    gone = NodeCapacity("d", {}, reachable=False)
    cordoned = NodeCapacity("e", {"zone": "y"}, free_kib=8 * GIB, schedulable=False)
    p = place([A, B, gone, cordoned], req(selector={"zone": "y"}, memory_kib=5 * GIB))
    assert not p.scheduled
    assert p.reason == (
        "0/4 nodes are available: 1 node(s) didn't match node selector, "
        "1 node(s) were unschedulable (cordoned), "
        "1 node(s) had insufficient memory (need 5120 MiB), 1 node(s) were unreachable"
    )


def test_existing_vm_stays_on_its_node_while_it_still_matches() -> None:
    assert place([A, B], req(), current="a").node == "a"
    # A cordoned node keeps what fits nowhere else, saying why.
    cordoned = NodeCapacity("a", A.labels, free_kib=0, schedulable=False)
    held = place([cordoned, B], req(selector={"zone": "x"}), current="a")
    assert held.node == "a" and "1 node(s) were unschedulable (cordoned)" in held.reason


def test_cordoned_node_is_drained_onto_a_fitting_node() -> None:
    """Issue 10: `schedulable: false` drains; the plan applies the eviction strategy
    (tests/plan/test_plan_migrate.py)."""
    cordoned = NodeCapacity("a", A.labels, free_kib=A.free_kib, schedulable=False)
    assert place([cordoned, B, C], req(), current="a").node == "b"
    # An unreachable node still keeps its VMs: no move it cannot confirm.
    gone = NodeCapacity("a", A.labels, reachable=False, schedulable=False)
    assert place([gone, B], req(), current="a").node == "a"


def test_existing_vm_moves_when_its_node_no_longer_matches() -> None:
    assert place([A, B], req(selector={"zone": "y"}), current="a").node == "b"


def test_existing_vm_that_fits_nowhere_keeps_its_node_with_the_reason() -> None:
    p = place([A, B], req(selector={"zone": "z"}), current="a")
    assert p.node == "a" and p.reason.startswith("0/2 nodes are available")


def test_cordoned_node_takes_no_new_vm() -> None:
    cordoned = NodeCapacity("b", B.labels, free_kib=B.free_kib, schedulable=False)
    assert place([A, cordoned], req()).node == "a"


def term(*exprs: dict[str, Any], fields: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    return {"matchExpressions": list(exprs), "matchFields": list(fields)}


def test_required_node_affinity_operators() -> None:
    def on(*terms: dict[str, Any]) -> str | None:
        return place([A, B, C], req(terms=terms)).node

    assert on(term({"key": "zone", "operator": "In", "values": ["x"]})) == "a"
    assert on(term({"key": "zone", "operator": "NotIn", "values": ["y"]})) == "a"
    assert on(term({"key": "disk", "operator": "Exists"})) == "a"
    assert on(term({"key": "gen", "operator": "DoesNotExist"})) == "c"
    assert on(term({"key": "gen", "operator": "Gt", "values": ["4"]})) == "b"
    assert on(term({"key": "gen", "operator": "Lt", "values": ["4"]})) == "a"
    assert on(term(fields=({"key": "metadata.name", "operator": "In", "values": ["c"]},))) == "c"
    # Terms are ORed, expressions within a term ANDed.
    assert on(term({"key": "zone", "operator": "In", "values": ["q"]}),
              term({"key": "zone", "operator": "In", "values": ["y"]},
                   {"key": "gen", "operator": "Exists"})) == "b"
    p = place([A, B], req(terms=(term({"key": "zone", "operator": "In", "values": ["q"]}),)))
    assert p.reason == "0/2 nodes are available: 2 node(s) didn't match node affinity"


def test_no_nodes() -> None:
    assert place([], req()).reason.endswith("no nodes configured")


def test_request_reads_selector_affinity_memory_and_instancetype() -> None:
    body = yaml.safe_load(vm("w", memory="3Gi"))
    tmpl = body["spec"]["template"]["spec"]
    tmpl["nodeSelector"] = {"zone": "y"}
    tmpl["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [term({"key": "gen", "operator": "Exists"})]}}}
    (m,) = manifests(yaml.safe_dump(body))
    r = request_of(m, {})
    assert (r.selector, r.memory_kib, r.will_run) == ({"zone": "y"}, 3 * GIB, True)
    assert len(r.terms) == 1


def test_vms_placed_in_one_plan_count_against_each_other() -> None:
    # Two 3 GiB VMs, two 4 GiB nodes: the second must not land on the first's node.
    vms = manifests("---\n".join([vm("p", memory="3Gi"), vm("q", memory="3Gi")]))
    out = schedule(vms, {}, [B, C], {})
    assert sorted(p.node or "" for p in out.values()) == ["b", "c"]
    # A third does not fit anywhere.
    three = manifests("---\n".join(vm(n, memory="3Gi") for n in "pqr"))
    placed = schedule(three, {}, [B, C], {})
    assert placed[ObjectKey("VirtualMachine", "prod", "r")].node is None
