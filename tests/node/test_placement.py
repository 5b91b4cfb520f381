"""Placement (pure): node selector, free memory, stickiness, reasons."""

from __future__ import annotations

from node.placement import NodeCapacity, place

A = NodeCapacity("a", {"zone": "x", "disk": "ssd"}, free_kib=2 * 1024 * 1024)
B = NodeCapacity("b", {"zone": "y"}, free_kib=4 * 1024 * 1024)
C = NodeCapacity("c", {"zone": "y"}, free_kib=4 * 1024 * 1024)


def test_most_free_memory_wins_ties_by_config_order() -> None:
    assert place([A, B, C], selector={}, memory_kib=1024, will_run=True).node == "b"


def test_selector_filters_nodes() -> None:
    assert place([A, B], selector={"zone": "x"}, memory_kib=1024, will_run=True).node == "a"


def test_memory_filters_nodes_only_when_the_vm_will_run() -> None:
    need = 3 * 1024 * 1024
    assert place([A, B], selector={"zone": "x"}, memory_kib=need, will_run=True).node is None
    assert place([A, B], selector={"zone": "x"}, memory_kib=need, will_run=False).node == "a"


def test_reason_counts_each_cause() -> None:
    gone = NodeCapacity("d", {}, reachable=False)
    p = place([A, B, gone], selector={"zone": "y"}, memory_kib=5 * 1024 * 1024,
              will_run=True)
    assert not p.scheduled
    assert p.reason == (
        "0/3 nodes are available: 1 node(s) didn't match node selector, "
        "1 node(s) had insufficient memory (need 5120 MiB), 1 node(s) were unreachable"
    )


def test_existing_vm_stays_on_its_node() -> None:
    assert place([A, B], selector={}, memory_kib=1, will_run=True, current="a").node == "a"


def test_no_nodes() -> None:
    assert place([], selector={}, memory_kib=1, will_run=True).reason.endswith(
        "no nodes configured")
