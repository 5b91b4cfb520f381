"""The per-domain readers walk an element's children once instead of asking ElementPath
several times (issue 13: they run for every domain of every observe). They must read
exactly what the path lookups read: the first match of each, in document order, across
repeated parents, skipping comments and other namespaces, and fail with the same error."""

from __future__ import annotations

import itertools

import pytest
from lxml import etree

from node.cluster import definitions
from node.identity import metadata
from node.identity.metadata import NS, OwnerMetadata, parse_owner_element
from node.identity.records import APPLIED_NS, RUNTIME_NS, DomainFacts, _kib, domain_facts
from reconciler.core.model import VirtsyncError


def facts_by_paths(root: etree._Element) -> DomainFacts:
    """domain_facts as it read before issue 13, by ElementPath lookups."""
    vcpus = int(root.findtext("vcpu") or "1")
    topo = root.find("cpu/topology")
    if topo is not None:
        sockets, cores, threads = (int(topo.get(k, "1")) for k in ("sockets", "cores", "threads"))
    else:
        sockets, cores, threads = vcpus, 1, 1
    mem = root.find("memory")
    memory_kib = _kib(mem.text or "0", mem.get("unit", "KiB")) if mem is not None else 0
    macs: dict[str, str] = {}
    for iface in root.iterfind("devices/interface"):
        alias, mac = iface.find("alias"), iface.find("mac")
        name = alias.get("name", "") if alias is not None else ""
        if mac is not None and name.startswith("ua-"):
            macs[name[3:]] = (mac.get("address") or "").lower()
    serials: dict[str, str] = {}
    files: dict[str, str] = {}
    for disk in root.iterfind("devices/disk"):
        alias, source = disk.find("alias"), disk.find("source")
        name = alias.get("name", "") if alias is not None else ""
        if not name.startswith("ua-"):
            continue
        serial = disk.findtext("serial")
        if serial:
            serials[name[3:]] = serial
        if source is not None and source.get("file"):
            files[name[3:]] = source.get("file", "")
    return DomainFacts(sockets, cores, threads, vcpus, memory_kib, macs,
                       disk_serials=serials, disk_files=files)


PARTS = {
    "vcpu": ["<vcpu>4</vcpu>", "<vcpu/>", "<vcpu placement='static'>2</vcpu><vcpu>9</vcpu>",
             "<x:vcpu xmlns:x='urn:x'>7</x:vcpu>", ""],
    "cpu": ["<cpu><topology sockets='2' cores='3' threads='1'/></cpu>",
            "<cpu mode='host'/><cpu><topology cores='4'/></cpu>",
            "<cpu><topology cores='2'/></cpu><cpu mode='host'/>",
            "<cpu><topology cores='2'/></cpu><cpu><topology cores='8'/></cpu>",
            "<cpu><feature name='a'/></cpu>", ""],
    "memory": ["<memory unit='MiB'>512</memory>", "<memory>1024</memory><memory>8</memory>",
               "<!-- memory --><memory unit='GiB'>2</memory>", ""],
    "devices": [
        "<devices><interface><alias name='ua-default'/><mac address='02:AA:00:00:00:01'/>"
        "</interface><interface><mac address='02:00:00:00:00:02'/></interface>"
        "<disk><alias name='ua-root'/><source file='/s/root.qcow2'/><serial>S1</serial></disk>"
        "<disk><alias name='virtio-disk1'/><source file='/s/x'/></disk></devices>",
        "<devices><disk><alias name='ua-a'/><source file='/a'/></disk></devices><!-- c -->"
        "<devices><disk><alias name='ua-b'/><serial>S2</serial></disk>"
        "<interface><alias name='ua-n'/><mac/></interface></devices>",
        "<devices><disk><alias name='ua-a'/><source dev='/dev/sda'/><serial/></disk></devices>",
        # Each device's children read in one walk too (issue 13): the first of each
        # wins, comments and other namespaces are skipped, a disk's <mac> and an
        # interface's <source> are not what the other reads.
        "<devices><interface><!-- c --><alias name='ua-x'/><alias name='ua-y'/>"
        "<source network='n'/><mac address='02:00:00:00:00:0A'/><mac address='0B'/>"
        "</interface><disk><x:serial xmlns:x='urn:x'>Z</x:serial><mac address='m'/>"
        "<x:alias xmlns:x='urn:x' name='ua-q'/><alias name='ua-d'/><alias name='ua-e'/>"
        "<source file='/1'/><source file='/2'/><serial>S3</serial><serial>S4</serial>"
        "</disk><disk><serial>S5</serial><alias name='ua-f'/><source/></disk></devices>",
        "",
    ],
}


@pytest.mark.parametrize("combo", list(itertools.product(*PARTS.values())))
def test_domain_facts_reads_what_the_path_lookups_read(combo: tuple[str, ...]) -> None:
    # Two orders of the parts: document order must not matter to the result either way.
    for parts in (combo, tuple(reversed(combo))):
        root = etree.fromstring(f"<domain><name>x</name>{''.join(parts)}</domain>")
        assert domain_facts(root) == facts_by_paths(root)


def owner_by_paths(el: etree._Element) -> OwnerMetadata:
    """The marker as _from_element read it before issue 13, by ElementPath lookups."""
    if el.tag not in (metadata._Q + "vm", "vm"):
        raise VirtsyncError(f"virtsync metadata: expected <{metadata.PREFIX}:vm>, got <{el.tag}>")
    q = metadata._Q if el.tag == metadata._Q + "vm" else ""

    def text(tag: str) -> str:
        child = el.find(q + tag)
        if child is None:
            raise VirtsyncError(f"virtsync metadata: <{metadata.PREFIX}:{tag}> missing")
        return child.text or ""

    obj = el.find(q + "object")
    if obj is None or not obj.get("namespace") or not obj.get("name"):
        raise VirtsyncError(f"virtsync metadata: <{metadata.PREFIX}:object namespace= name=> "
                            "missing")
    gen_text = text("generation")
    try:
        generation = int(gen_text)
    except ValueError as exc:
        raise VirtsyncError(f"virtsync metadata: generation {gen_text!r} is not a "
                            "number") from exc
    return OwnerMetadata(obj.get("namespace", ""), obj.get("name", ""), text("revision"),
                         text("spec-hash"), generation, text("owner"),
                         el.findtext(q + "installation") or "", el.findtext(q + "node") or "")


CHILDREN = ["<v:owner>virtsync</v:owner>", "<v:object namespace='ns' name='vm'/>",
            "<v:revision>r1</v:revision>", "<v:spec-hash>sha256:x</v:spec-hash>",
            "<v:generation>3</v:generation>", "<v:installation>id1</v:installation>",
            "<v:node>n1</v:node>"]
VARIANTS = [
    ("all", CHILDREN),
    ("each twice, the first wins", [
        *CHILDREN, "<v:owner>other</v:owner>", "<v:object namespace='ns2' name='vm2'/>",
        "<v:revision>r2</v:revision>", "<v:spec-hash>sha256:y</v:spec-hash>",
        "<v:generation>4</v:generation>", "<v:installation>id2</v:installation>",
        "<v:node>n2</v:node>"]),
    ("comments and foreign tags", ["<!-- x -->", "<o:owner xmlns:o='urn:o'>no</o:owner>",
                                   *CHILDREN]),
    ("empty texts", ["<v:owner/>", "<v:object namespace='ns' name='vm'/>", "<v:revision/>",
                     "<v:spec-hash/>", "<v:generation>0</v:generation>", "<v:installation/>",
                     "<v:node/>"]),
    ("no optional ones", CHILDREN[:5]),
    *((f"without {c.split('>')[0][1:].split()[0]}", CHILDREN[:i] + CHILDREN[i + 1:])
      for i, c in enumerate(CHILDREN[:5])),
    ("no revision nor owner", [CHILDREN[1], CHILDREN[3], CHILDREN[4]]),
    ("object without a name", ["<v:object namespace='ns'/>", *CHILDREN[2:]]),
    ("generation not a number", [*CHILDREN[:4], "<v:generation>x</v:generation>"]),
]


@pytest.mark.parametrize("namespaced", [True, False])
@pytest.mark.parametrize(("what", "children"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_owner_marker_reads_what_the_path_lookups_read(what: str, children: list[str],
                                                      namespaced: bool) -> None:
    body = "".join(children)
    xml = (f"<v:vm xmlns:v='{NS}'>{body}</v:vm>" if namespaced
           else f"<vm>{body.replace('v:', '')}</vm>")
    el = etree.fromstring(xml)
    try:
        want: OwnerMetadata | str = owner_by_paths(el)
    except VirtsyncError as exc:
        want = str(exc)
    try:
        got: OwnerMetadata | str = parse_owner_element(xml)
    except VirtsyncError as exc:
        got = str(exc)
    assert got == want


APPLIED = f"{{{APPLIED_NS}}}applied"
RUNTIME = f"{{{RUNTIME_NS}}}runtime"
META = {
    "marker": ["<v:vm><v:owner>a</v:owner></v:vm>", "<!-- m --><v:vm><v:owner>b</v:owner></v:vm>",
               "<vm/>", ""],
    "applied": ["<p:applied>one</p:applied>", "<p:applied>one</p:applied><p:applied>two</p:applied>",
                ""],
    "runtime": ["<r:runtime intent='stop'/>", "<r:other/><r:runtime intent='hold'/>", ""],
}
SYSINFO = ["<sysinfo><system><entry name='serial'>S1</entry></system></sysinfo>",
           "<sysinfo><system><entry name='uuid'>u</entry><entry name='serial'/>"
           "<entry name='serial'>S2</entry></system></sysinfo>",
           "<sysinfo><bios/></sysinfo><sysinfo><system><entry name='serial'>S3</entry>"
           "</system><system><entry name='serial'>S4</entry></system></sysinfo>",
           "<sysinfo><system><entry>S5</entry><x:entry xmlns:x='urn:x' name='serial'>S6"
           "</x:entry></system></sysinfo>", ""]


@pytest.mark.parametrize("sysinfo", SYSINFO)
@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("combo", list(itertools.product(*META.values())))
def test_domain_metadata_and_serial_read_what_the_path_lookups_read(
        combo: tuple[str, ...], split: bool, sysinfo: str) -> None:
    """node.cluster.definitions reads the marker, applied and runtime elements and the serial in
    one walk each; `split`: the metadata parts in two <metadata> elements."""
    parts = [f"<metadata>{p}</metadata>" for p in combo] if split \
        else [f"<metadata>{''.join(combo)}</metadata>"]
    root = etree.fromstring(
        f"<domain xmlns:v='{NS}' xmlns:p='{APPLIED_NS}' xmlns:r='{RUNTIME_NS}'><name>x</name>"
        f"{parts[0]}{sysinfo}{''.join(parts[1:])}</domain>")
    marked = definitions._metadata(root)
    for tag in (metadata.MARKER_TAG, APPLIED, RUNTIME):
        assert marked.get(tag) is root.find(f"metadata/{tag}")
    assert definitions._serial(root) == (root.findtext("sysinfo/system/entry[@name='serial']") or "")
