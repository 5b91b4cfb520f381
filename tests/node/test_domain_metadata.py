"""virtsync's owner marker in <metadata>: written by the builder, read back from libvirt."""

from __future__ import annotations

from typing import Any

import libvirt
import pytest
from domain_cases import MINIMAL

from node.domain.builder import build_from_inputs, to_xml
from node.identity.metadata import (
    NS,
    PREFIX,
    OwnerMetadata,
    owner_element_xml,
    parse_owner_element,
    parse_owner_metadata,
)
from reconciler.core.model import ObjectKey, VirtsyncError


def test_roundtrip_through_libvirt_set_metadata(test_conn: Any) -> None:
    dom = test_conn.defineXML(to_xml(build_from_inputs(MINIMAL.inputs())))
    assert parse_owner_metadata(dom.XMLDesc(0)) == MINIMAL.metadata
    newer = OwnerMetadata("default", "web", "feedbeef", "sha256:0ff1ce", 4)
    dom.setMetadata(
        libvirt.VIR_DOMAIN_METADATA_ELEMENT, owner_element_xml(newer), PREFIX, NS,
        libvirt.VIR_DOMAIN_AFFECT_CONFIG,
    )  # fmt: skip
    got = parse_owner_element(dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, NS))
    assert got == newer
    assert got.key == ObjectKey("VirtualMachine", "default", "web") and got.is_ours


def test_domain_without_marker_is_none() -> None:
    assert parse_owner_metadata("<domain type='test'><name>x</name></domain>") is None
    other_ns = "<domain><metadata><a:vm xmlns:a='urn:other'/></metadata></domain>"
    assert parse_owner_metadata(other_ns) is None


@pytest.mark.parametrize(
    "inner",
    [
        "<virtsync:owner>virtsync</virtsync:owner>",  # no object/revision/...
        "<virtsync:owner>virtsync</virtsync:owner><virtsync:object namespace='a' name='b'/>"
        "<virtsync:revision/><virtsync:spec-hash/><virtsync:generation>x</virtsync:generation>",
    ],
)
def test_broken_marker_is_an_error_not_absence(inner: str) -> None:
    xml = f"<domain><metadata><virtsync:vm xmlns:virtsync='{NS}'>{inner}</virtsync:vm></metadata></domain>"
    with pytest.raises(VirtsyncError):
        parse_owner_metadata(xml)


def test_foreign_owner_is_not_ours() -> None:
    meta = OwnerMetadata("a", "b", "", "", 1, owner="someone-else")
    assert not parse_owner_element(owner_element_xml(meta)).is_ours


def test_entities_are_not_expanded() -> None:
    bomb = (
        "<!DOCTYPE d [<!ENTITY x 'virtsync'>]>"
        f"<domain><metadata><virtsync:vm xmlns:virtsync='{NS}'><virtsync:owner>&x;</virtsync:owner>"
        "<virtsync:object namespace='a' name='b'/><virtsync:revision/><virtsync:spec-hash/>"
        "<virtsync:generation>1</virtsync:generation></virtsync:vm></metadata></domain>"
    )
    meta = parse_owner_metadata(bomb)
    assert meta is not None and not meta.is_ours
