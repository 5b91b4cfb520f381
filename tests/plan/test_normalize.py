"""Normalization: equal things compare equal; different things stay different."""

from __future__ import annotations

import copy

import pytest

from reconciler.core.quantity import Quantity, as_quantity, parse_quantity
from reconciler.planning.normalize import Keyed, align_defaults, normalize


@pytest.mark.parametrize(("a", "b"), [
    ("1Gi", "1024Mi"), ("1G", "1000M"), ("500m", "0.5"), ("1", 1), ("1e3", "1k"),
    ("1.5Gi", "1536Mi"), ("128Mi", "0.125Gi"), ("2", 2.0),
])
def test_equal_quantities(a: object, b: object) -> None:
    qa, qb = as_quantity(a), as_quantity(b)
    assert qa is not None and qb is not None
    assert qa == qb and hash(qa) == hash(qb)


@pytest.mark.parametrize(("a", "b"), [("1Gi", "1G"), ("1M", "1Mi"), ("1m", "1M"),
                                      ("1E", "1e1")])
def test_different_quantities(a: str, b: str) -> None:
    assert as_quantity(a) != as_quantity(b)


@pytest.mark.parametrize("text", ["", "Gi", "1GB", "1e999", "one", "1 Gi x"])
def test_not_quantities(text: str) -> None:
    assert parse_quantity(text) is None


def test_quantity_keeps_the_written_text() -> None:
    q = as_quantity("1024Mi")
    assert isinstance(q, Quantity) and str.__str__(q) == "1024Mi"
    assert as_quantity(True) is None


def _vm(spec: dict[str, object], **meta: object) -> dict[str, object]:
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "a", **meta}, "spec": spec}


def test_running_equals_run_strategy() -> None:
    assert normalize("VirtualMachine", _vm({"running": True})) == normalize(
        "VirtualMachine", _vm({"runStrategy": "Always"}))
    assert normalize("VirtualMachine", _vm({"running": False})) == normalize(
        "VirtualMachine", _vm({}))
    assert normalize("VirtualMachine", _vm({"running": True})) != normalize(
        "VirtualMachine", _vm({"runStrategy": "Halted"}))


def test_keyed_lists_match_by_name_not_position() -> None:
    def disks(order: list[str]) -> dict[str, object]:
        return _vm({"template": {"spec": {"domain": {"devices": {
            "disks": [{"name": n, "disk": {"bus": "virtio"}} for n in order]}}}}})
    a = normalize("VirtualMachine", disks(["a", "b"]))
    b = normalize("VirtualMachine", disks(["b", "a"]))
    assert a == b  # same items; their order is compared by the diff, not here
    got = a["spec"]["template"]["spec"]["domain"]["devices"]["disks"]  # type: ignore[index]
    assert isinstance(got, Keyed) and got.names == ["a", "b"] and got.ordered


def test_duplicate_names_stay_a_list() -> None:
    body = _vm({"template": {"spec": {"volumes": [{"name": "x"}, {"name": "x"}]}}})
    vols = normalize("VirtualMachine", body)["spec"]["template"]["spec"]["volumes"]  # type: ignore[index]
    assert isinstance(vols, list) and not isinstance(vols, Keyed)


def test_empty_equals_absent_for_containers_but_not_markers() -> None:
    plain = normalize("VirtualMachine", _vm({"template": {"spec": {"domain": {
        "devices": {"interfaces": [{"name": "d", "masquerade": {}}]}}}}}))
    noisy = normalize("VirtualMachine", _vm({"template": {"metadata": {"labels": {}},
                                                           "spec": {"domain": {
        "resources": {}, "devices": {"interfaces": [{"name": "d", "masquerade": {}}],
                                     "disks": []}}, "volumes": None}}}, labels={}))
    assert plain == noisy
    bridge = normalize("VirtualMachine", _vm({"template": {"spec": {"domain": {
        "devices": {"interfaces": [{"name": "d", "bridge": {}}]}}}}}))
    assert plain != bridge


def test_server_filled_fields_are_dropped() -> None:
    git = _vm({"runStrategy": "Always"})
    live = copy.deepcopy(git)
    live["metadata"].update({  # type: ignore[union-attr]
        "uid": "u", "resourceVersion": "1", "generation": 3,
        "creationTimestamp": "2024-01-01T00:00:00Z", "managedFields": [{"manager": "x"}],
        "annotations": {"kubevirt.io/latest-observed-api-version": "v1"}})
    live["status"] = {"ready": True}
    assert normalize("VirtualMachine", git) == normalize("VirtualMachine", live)


def test_defaulted_identity_is_not_a_change_but_reported() -> None:
    git = normalize("VirtualMachine", _vm({"template": {"spec": {"domain": {
        "devices": {"interfaces": [{"name": "d", "masquerade": {}}]}}}}}))
    live_body = _vm({"template": {"spec": {"architecture": "amd64", "domain": {
        "firmware": {"uuid": "U", "serial": "S"}, "machine": {"type": "q35"},
        "devices": {"interfaces": [{"name": "d", "masquerade": {},
                                    "macAddress": "52:54:00:aa:bb:cc"}]}}}}})
    live = normalize("VirtualMachine", live_body)
    aligned, unpinned = align_defaults(git, live, "VirtualMachine")
    assert aligned == git
    assert {u.what for u in unpinned} == {"firmware UUID", "firmware serial", "MAC address"}
    assert live["spec"]["template"]["spec"]["architecture"] == "amd64"  # type: ignore[index]


def test_pinned_identity_is_compared() -> None:
    def body(uuid: str) -> dict[str, object]:
        return normalize("VirtualMachine", _vm({"template": {"spec": {"domain": {
            "firmware": {"uuid": uuid}}}}}))
    aligned, unpinned = align_defaults(body("A"), body("B"), "VirtualMachine")
    assert aligned != body("A") and not unpinned
