"""What a domain's persistent definition says, parsed once per distinct XML text.

A node scan reads every domain's inactive XML (one libvirt call each: that is how drift
made behind virtsync's back is seen). Parsing it — the XML tree, the owner marker, the
applied body's JSON, the runtime record, the vCPU/memory/MAC/disk facts — cost more
than the call itself. A long-lived node (`virtsync watch`'s resync, issue 13) keeps the
parse of each domain's last text and reuses it while the text is byte-for-byte the
same: any change of the definition (`virsh edit`, a redefine, new runtime metadata)
changes the text, so it is parsed again; nothing is skipped that a full parse would see.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from node.identity.metadata import MARKER_TAG, OwnerMetadata, owner_of
from node.identity.records import (
    APPLIED_NS,
    RUNTIME_NS,
    Applied,
    DomainFacts,
    domain_facts,
    parse_applied,
    parse_runtime,
)
from node.lifecycle.status import RuntimeRecord

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@dataclass(frozen=True)
class Definition:
    """The parts of a managed domain's persistent definition a record needs."""

    applied: Applied | None
    runtime: RuntimeRecord
    facts: DomainFacts
    serial: str


def parse_root(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode(), _PARSER)


_APPLIED_TAG = f"{{{APPLIED_NS}}}applied"
_RUNTIME_TAG = f"{{{RUNTIME_NS}}}runtime"


def _metadata(root: etree._Element) -> dict[str, etree._Element]:
    """The first element of each tag in the domain's <metadata> (what
    root.find("metadata/TAG") gives), in one walk instead of one path lookup per part
    (issue 13: this runs for every domain whose text changed)."""
    first: dict[str, etree._Element] = {}
    for child in root:
        if child.tag == "metadata":
            for el in child:
                if isinstance(el.tag, str):
                    first.setdefault(el.tag, el)
    return first


def _serial(root: etree._Element) -> str:
    """root.findtext("sysinfo/system/entry[@name='serial']") or "", in one walk."""
    for entry in (e for info in root if info.tag == "sysinfo"
                  for system in info if system.tag == "system"
                  for e in system if e.tag == "entry" and e.get("name") == "serial"):
        return entry.text or ""
    return ""


def read_owner(root: etree._Element) -> tuple[OwnerMetadata | None, dict[str, etree._Element]]:
    """The owner marker, with the <metadata> children it was found among."""
    marked = _metadata(root)
    return owner_of(marked.get(MARKER_TAG)), marked


def read_definition(inactive: etree._Element,
                    marked: dict[str, etree._Element] | None = None) -> Definition:
    """`marked`: _metadata(inactive), when the caller has it already."""
    found = _metadata(inactive) if marked is None else marked
    applied_el = found.get(_APPLIED_TAG)
    runtime_el = found.get(_RUNTIME_TAG)
    return Definition(
        applied=parse_applied(applied_el) if applied_el is not None else None,
        runtime=parse_runtime(runtime_el),
        facts=domain_facts(inactive),
        serial=_serial(inactive),
    )


Read = tuple[OwnerMetadata | None, Definition | None]


class DefinitionMemo:
    """The last text's parse per domain name (a digest of the text, not the text: ~4 KB
    per domain is not kept). `begin`/`end` around a whole scan forget domains that are
    gone. Safe to share with the lifecycle agent's thread: each step is one dict
    operation."""

    def __init__(self) -> None:
        self._by_name: dict[str, tuple[bytes, Read]] = {}
        self._seen: dict[str, tuple[bytes, Read]] | None = None

    def read(self, name: str, xml: str,
             needs: Callable[[OwnerMetadata | None], bool],
             root: etree._Element | None = None) -> Read:
        """The owner marker of `xml` and, when `needs` says so for that marker, the rest
        of the definition; the earlier read when the domain's text is unchanged. Raises
        what parsing raises (nothing is remembered then). `root`: `xml` already parsed
        by the caller (parse_root), used instead of parsing it again."""
        digest = hashlib.blake2b(xml.encode(), digest_size=20).digest()
        known = self._by_name.get(name)
        if known is not None and known[0] == digest and (
                known[1][1] is not None or not needs(known[1][0])):
            read = known[1]
        else:
            root = parse_root(xml) if root is None else root
            owner, marked = read_owner(root)
            read = (owner, read_definition(root, marked) if needs(owner) else None)
        entry = (digest, read)
        self._by_name[name] = entry
        seen = self._seen  # once: a scan on another thread may end meanwhile
        if seen is not None:
            seen[name] = entry
        return read

    def begin(self) -> None:
        self._seen = {}

    def end(self) -> None:
        """After a complete scan: keep only the domains it saw."""
        if self._seen is not None:
            self._by_name, self._seen = self._seen, None
