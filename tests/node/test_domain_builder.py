"""Builder behaviour beyond the goldens: naming, validation of inputs, device naming."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from domain_cases import CASES, FULL, MINIMAL, ROOT
from lxml import etree

from node.domain.builder import build_domain, build_from_inputs, to_xml
from node.domain.configure.disks import target_names, target_suffix
from node.domain.model import ResolvedInterface, UserNet
from node.domain.naming import domain_name, parse_domain_name
from node.identity.metadata import OwnerMetadata
from node.identity.records import Effective, applied_element, decorate
from node.lifecycle.status import RuntimeRecord
from reconciler.core.model import VirtsyncError


def test_domain_name_roundtrips_and_cannot_collide() -> None:
    assert domain_name("default", "web") == "default_web"
    assert parse_domain_name("team-a_web.v2") == ("team-a", "web.v2")
    # The pairs that would collide under a '-' or '.' separator stay distinct.
    assert domain_name("a-b", "c") != domain_name("a", "b-c")
    assert parse_domain_name("not-ours") is None
    assert parse_domain_name("Foo_bar") is None


@pytest.mark.parametrize("namespace,name", [("a_b", "c"), ("a", "b_c"), ("", "x"), ("A", "x")])
def test_domain_name_refuses_non_kubernetes_names(namespace: str, name: str) -> None:
    with pytest.raises(VirtsyncError):
        domain_name(namespace, name)


def test_build_domain_entry_point_matches_inputs_path() -> None:
    el = build_domain(
        FULL.vm, FULL.identity, FULL.node, FULL.disks, FULL.interfaces, None, FULL.metadata
    )
    assert to_xml(el) == to_xml(build_from_inputs(FULL.inputs()))
    assert el.findtext("name") == "default_web"


def test_metadata_must_name_the_same_vm() -> None:
    other = OwnerMetadata("default", "db", "rev", "sha256:x")
    with pytest.raises(VirtsyncError, match="default/db"):
        build_domain(MINIMAL.vm, MINIMAL.identity, MINIMAL.node, MINIMAL.disks, (), None, other)


def test_duplicate_mac_is_refused() -> None:
    nics = (
        ResolvedInterface("a", "02:00:00:00:00:01", "virtio", UserNet()),
        ResolvedInterface("b", "02:00:00:00:00:01", "virtio", UserNet()),
    )
    case = dataclasses.replace(MINIMAL, interfaces=nics)
    with pytest.raises(VirtsyncError, match="share a MAC"):
        build_from_inputs(case.inputs())


def test_duplicate_disk_name_is_refused() -> None:
    case = dataclasses.replace(MINIMAL, disks=(ROOT, ROOT))
    with pytest.raises(VirtsyncError, match="twice"):
        build_from_inputs(case.inputs())


def test_target_names_follow_libvirt_numbering() -> None:
    assert [target_suffix(i) for i in (0, 25, 26, 27, 701, 702)] == [
        "a", "z", "aa", "ab", "zz", "aaa",
    ]  # fmt: skip
    disks = tuple(dataclasses.replace(ROOT, name=f"d{i}") for i in range(28))
    names = target_names(disks)
    assert names["d0"] == "vda" and names["d26"] == "vdaa" and names["d27"] == "vdab"


def test_adding_a_disk_or_nic_keeps_existing_device_identity() -> None:
    """Targets, serials and MACs of existing devices do not move when one is appended."""
    before = build_from_inputs(FULL.inputs())
    extra_disk = dataclasses.replace(
        ROOT, name="extra", path="/x.qcow2", serial="S9", boot_order=None
    )
    extra_nic = ResolvedInterface("more", "02:00:00:00:00:09", "virtio", UserNet())
    after = build_from_inputs(
        dataclasses.replace(
            FULL, disks=(*FULL.disks, extra_disk), interfaces=(*FULL.interfaces, extra_nic)
        ).inputs()
    )

    def devices(el: etree._Element) -> list[tuple[str | None, ...]]:
        disks = [
            (d.find("target").get("dev"), d.findtext("serial"))  # type: ignore[union-attr]
            for d in el.iterfind("devices/disk")
        ]
        macs = [(m.get("address"),) for m in el.iterfind("devices/interface/mac")]
        return disks + macs

    assert devices(after)[: len(FULL.disks)] == devices(before)[: len(FULL.disks)]
    assert set(devices(before)) < set(devices(after))
    assert after.findtext("uuid") == before.findtext("uuid")


def test_no_graphics_unless_asked() -> None:
    assert build_from_inputs(MINIMAL.inputs()).find("devices/graphics") is None
    assert build_from_inputs(FULL.inputs()).find("devices/graphics") is not None


def test_xml_special_characters_are_escaped_not_injected() -> None:
    nasty = dataclasses.replace(ROOT, path="/s/a'b\"<c>&.qcow2")
    el = build_from_inputs(dataclasses.replace(MINIMAL, disks=(nasty,)).inputs())
    reparsed = etree.fromstring(to_xml(el).encode())
    assert reparsed.find("devices/disk/source").get("file") == "/s/a'b\"<c>&.qcow2"  # type: ignore[union-attr]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_an_owned_element_serializes_as_a_copy_does(case: Any) -> None:
    """render() indents its own element in place instead of a copy (issue 13): the same
    text, with the applied and runtime records and their namespaces, as to_xml of the
    untouched element."""
    def built() -> etree._Element:
        el = build_from_inputs(case.inputs())
        effective = Effective(sockets=1, cores=2, threads=1, memory_kib=65536,
                              macs={"default": "02:00:00:00:00:01"})
        body = {"kind": "VirtualMachine", "metadata": {"name": "web & <co>"},
                "spec": {"userData": "#cloud-config\npassword: x\n"}}
        decorate(el, applied_element(body, effective), RuntimeRecord(created=1.5))
        return el
    el = built()
    copied = to_xml(el)
    assert el.text is None  # untouched: not indented in place
    assert to_xml(built(), owned=True) == copied
