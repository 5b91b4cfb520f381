"""Safety rule 3/18: a damaged owner marker is an error, never "not ours, ignore" nor
"ours, go ahead" — one test per way the marker can be broken (issue 14: each kills a
surviving mutant of node/identity/metadata.py)."""

from __future__ import annotations

import pytest

from node.identity.metadata import NS, OwnerMetadata, parse_owner_element, parse_owner_metadata
from reconciler.core.model import VirtsyncError

GOOD = {
    "owner": "<v:owner>virtsync</v:owner>",
    "object": "<v:object namespace='a' name='b'/>",
    "revision": "<v:revision>r1</v:revision>",
    "spec-hash": "<v:spec-hash>sha256:x</v:spec-hash>",
    "generation": "<v:generation>3</v:generation>",
}


def marker(**replace: str) -> str:
    parts = {**GOOD, **replace}
    return f"<v:vm xmlns:v='{NS}'>{''.join(parts.values())}</v:vm>"


def domain(inner: str) -> str:
    return f"<domain><metadata>{inner}</metadata></domain>"


def test_good_marker_reads_every_field() -> None:
    assert parse_owner_metadata(domain(marker())) == OwnerMetadata("a", "b", "r1", "sha256:x", 3)
    assert parse_owner_element(marker()) == OwnerMetadata("a", "b", "r1", "sha256:x", 3)


@pytest.mark.parametrize("child", sorted(GOOD))
def test_missing_child_is_an_error(child: str) -> None:
    with pytest.raises(VirtsyncError, match=child):
        parse_owner_metadata(domain(marker(**{child: ""})))


@pytest.mark.parametrize("obj", ["<v:object name='b'/>", "<v:object namespace='a'/>",
                                 "<v:object namespace='' name='b'/>"])
def test_object_without_namespace_or_name_is_an_error(obj: str) -> None:
    with pytest.raises(VirtsyncError, match="object namespace= name="):
        parse_owner_metadata(domain(marker(object=obj)))


def test_wrong_element_is_an_error() -> None:
    with pytest.raises(VirtsyncError, match="expected <virtsync:vm>"):
        parse_owner_element(f"<v:other xmlns:v='{NS}'/>")


@pytest.mark.parametrize("xml", ["<domain><metadata>", "not xml at all", ""])
def test_malformed_xml_is_a_virtsync_error(xml: str) -> None:
    with pytest.raises(VirtsyncError, match="not well-formed"):
        parse_owner_metadata(xml)
    with pytest.raises(VirtsyncError, match="not well-formed"):
        parse_owner_element(xml)
