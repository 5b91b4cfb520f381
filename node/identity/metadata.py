"""virtsync's owner marker inside a libvirt domain's `<metadata>`.

libvirt keeps one element per XML namespace in `<metadata>`; virtsync's is

    <virtsync:vm xmlns:virtsync="https://virtsync.io/xmlns/domain/v1">
      <virtsync:owner>virtsync</virtsync:owner>
      <virtsync:object namespace="default" name="web"/>
      <virtsync:revision>3f2c...</virtsync:revision>        git commit (or '' when unknown)
      <virtsync:spec-hash>sha256:...</virtsync:spec-hash>   hash of the normalized spec
      <virtsync:generation>4</virtsync:generation>          bumps on every define
      <virtsync:installation>9f1c...</virtsync:installation>  the state directory's id
    </virtsync:vm>

Safety rule 3: only domains carrying this marker with owner "virtsync" are changed or
pruned. `parse_owner_metadata` returns None for a domain without the marker and raises
for a marker that is present but broken, so a damaged marker is never read as
"not ours, ignore" nor as "ours, go ahead".

Safety rule 18: several installations (state directories: a CI runner's and a laptop's,
two teams') may share a node. Each define writes the installation's id; a `Scope` says
which marked domains one installation acts on and lists. A marker from the first
release carries no id: the installation whose inventory lists the VM manages it, and
its next define writes the id (docs/apply.md, "Installations").

The backend can update the marker in place with
`dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, owner_element_xml(meta), PREFIX, NS)`
and read it with `dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, NS)` →
`parse_owner_element(xml)`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lxml import etree

from reconciler.core.model import ObjectKey, VirtsyncError

NS = "https://virtsync.io/xmlns/domain/v1"
PREFIX = "virtsync"
OWNER = "virtsync"
_Q = f"{{{NS}}}"

# Domain XML comes from libvirt, but never let a parser fetch or expand anything.
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=True
)


@dataclass(frozen=True)
class OwnerMetadata:
    namespace: str
    name: str
    source_revision: str
    spec_hash: str
    generation: int = 1
    owner: str = OWNER
    installation: str = ""  # '' in markers written before installations had ids
    # The Cluster node entry that defined it: two entries may point at one libvirt
    # daemon (each with its own storage), and each sees only its own domains.
    node: str = ""

    @property
    def key(self) -> ObjectKey:
        return ObjectKey("VirtualMachine", self.namespace, self.name)

    @property
    def is_ours(self) -> bool:
        return self.owner == OWNER


def _marker(meta: OwnerMetadata, q: str) -> etree._Element:
    root = etree.Element(q + "vm", nsmap={PREFIX: NS} if q else None)
    etree.SubElement(root, q + "owner").text = meta.owner
    etree.SubElement(root, q + "object", namespace=meta.namespace, name=meta.name)
    etree.SubElement(root, q + "revision").text = meta.source_revision
    etree.SubElement(root, q + "spec-hash").text = meta.spec_hash
    etree.SubElement(root, q + "generation").text = str(meta.generation)
    if meta.installation:
        etree.SubElement(root, q + "installation").text = meta.installation
    if meta.node:
        etree.SubElement(root, q + "node").text = meta.node
    return root


def owner_element(meta: OwnerMetadata) -> etree._Element:
    """The `<virtsync:vm>` element (to place inside `<metadata>`)."""
    return _marker(meta, _Q)


def owner_element_xml(meta: OwnerMetadata) -> str:
    """The marker for `virDomainSetMetadata`: without a namespace, because libvirt
    puts the element (and its children) into the `uri` namespace itself and refuses
    one that already declares it."""
    return etree.tostring(_marker(meta, ""), encoding="unicode")


def parse_owner_element(xml: str | bytes) -> OwnerMetadata:
    """Read the marker element itself, as `virDomainGetMetadata` returns it (without
    namespace) or as it sits in a domain's <metadata> (in virtsync's namespace)."""
    try:
        root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise VirtsyncError(f"virtsync metadata is not well-formed XML: {exc}") from exc
    return _from_element(root)


def parse_owner_metadata(domain_xml: str | bytes | etree._Element) -> OwnerMetadata | None:
    """The owner marker of a whole domain XML (or its parsed root: a caller that also
    reads other parts parses once); None when the domain has none."""
    try:
        root = domain_xml if isinstance(domain_xml, etree._Element) else etree.fromstring(
            domain_xml.encode() if isinstance(domain_xml, str) else domain_xml, _PARSER
        )
    except etree.XMLSyntaxError as exc:
        raise VirtsyncError(f"domain XML is not well-formed: {exc}") from exc
    found = root.find(f"metadata/{_Q}vm")
    return None if found is None else _from_element(found)


MARKER_TAG = f"{_Q}vm"  # the owner marker's tag inside a domain's <metadata>


def owner_of(found: etree._Element | None) -> OwnerMetadata | None:
    """The owner marker from its element as found in a domain's <metadata> (a caller that
    looked it up with other metadata at once); None when there is none."""
    return None if found is None else _from_element(found)


def _from_element(el: etree._Element) -> OwnerMetadata:
    if el.tag not in (_Q + "vm", "vm"):
        raise VirtsyncError(f"virtsync metadata: expected <{PREFIX}:vm>, got <{el.tag}>")
    q = _Q if el.tag == _Q + "vm" else ""
    # The first child of each tag, as el.find(tag) gives it, in one walk (issue 13: this
    # runs for every domain of every observe).
    first: dict[str, etree._Element] = {}
    for child in el:
        if isinstance(child.tag, str):
            first.setdefault(child.tag, child)

    def text(tag: str) -> str:
        child = first.get(q + tag)
        if child is None:
            raise VirtsyncError(f"virtsync metadata: <{PREFIX}:{tag}> missing")
        return child.text or ""

    def optional(tag: str) -> str:
        child = first.get(q + tag)
        return (child.text or "") if child is not None else ""

    obj = first.get(q + "object")
    if obj is None or not obj.get("namespace") or not obj.get("name"):
        raise VirtsyncError(f"virtsync metadata: <{PREFIX}:object namespace= name=> missing")
    gen_text = text("generation")
    try:
        generation = int(gen_text)
    except ValueError as exc:
        raise VirtsyncError(f"virtsync metadata: generation {gen_text!r} is not a number") from exc
    return OwnerMetadata(
        namespace=obj.get("namespace", ""),
        name=obj.get("name", ""),
        source_revision=text("revision"),
        spec_hash=text("spec-hash"),
        generation=generation,
        owner=text("owner"),
        installation=optional("installation"),
        node=optional("node"),
    )


def move_owner_to(domain_root: etree._Element, node: str) -> None:
    """Rewrite the marker inside a parsed domain XML to name `node` as its node entry:
    a migrated domain belongs to the target node's entry (which sees only its own)."""
    found = domain_root.find(f"metadata/{_Q}vm")
    if found is None:
        return
    parent = found.getparent()
    assert parent is not None  # found under <metadata>
    parent.replace(found, owner_element(replace(_from_element(found), node=node)))


@dataclass(frozen=True)
class Scope:
    """Which virtsync-marked domains one installation acts on and lists (rule 18)."""

    installation: str = ""  # this installation's id; '' when defines write none
    legacy: frozenset[ObjectKey] = frozenset()  # id-less markers its inventory lists
    every_installation: bool = False  # `--all-installations`: every marked domain

    def manages(self, owner: OwnerMetadata) -> bool:
        if not owner.is_ours:
            return False
        if self.every_installation:
            return True
        if owner.installation:
            return owner.installation == self.installation
        return owner.key in self.legacy

    def widened(self) -> Scope:
        return Scope(self.installation, self.legacy, every_installation=True)


# Node components built without a scope (libraries, tests) see every marked domain.
EVERY_INSTALLATION = Scope(every_installation=True)
