"""Small lxml helpers: every element is built through these, never by string formatting."""

from __future__ import annotations

import re
from collections.abc import Mapping

from lxml import etree

# libvirt accepts user aliases "ua-" + [A-Za-z0-9_-]; they carry KubeVirt device names.
ALIAS = re.compile(r"^[A-Za-z0-9_-]+$")


def sub(
    parent: etree._Element,
    tag: str,
    attrs: Mapping[str, str] | None = None,
    text: str | None = None,
) -> etree._Element:
    """Append `<tag attrs>text</tag>` to `parent` and return it."""
    el = etree.SubElement(parent, tag, attrib=dict(attrs or {}))
    if text is not None:
        el.text = text
    return el


def child(parent: etree._Element, tag: str) -> etree._Element:
    """The first `tag` child of `parent`, created when missing."""
    found = parent.find(tag)
    return found if found is not None else etree.SubElement(parent, tag)


def to_xml(element: etree._Element, *, owned: bool = False) -> str:
    """Stable, indented serialization (two spaces, trailing newline); `element` is
    left untouched, unless the caller `owned` it and drops it after: then it is indented
    in place, the same text without a copy (issue 13: a define per VM at start-up)."""
    copy = element if owned else copy_element(element)
    etree.indent(copy, space="  ")
    return etree.tostring(copy, encoding="unicode") + "\n"


def copy_element(element: etree._Element) -> etree._Element:
    return etree.fromstring(etree.tostring(element))
