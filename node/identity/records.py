"""What virtsync keeps in a domain's `<metadata>` besides the owner marker, and how the
observed body shows drift.

Two elements, each under its own namespace so libvirt's per-namespace
`virDomainSetMetadata` can update one without touching the others:

- `<virtsync-applied:applied xmlns:virtsync-applied=".../v1/applied">JSON</...>`: the VM
  body as last applied, with every sensitive value replaced by its digest
  (`reconciler.core.sensitive.digest_sensitive`: cloud-init userData never sits in clear text
  in libvirt's XML), plus the effective values the node derived from it (vCPUs, memory,
  MACs) so observed drift can be told from instancetype expansion.
- `<virtsync-runtime:runtime .../>`: the lifecycle agent's memory (operator intent,
  consecutive failures, back-off deadline, last start and stop), see node.lifecycle.decide.

`overlay_drift` writes facts that differ from what was applied (someone ran
`virsh setvcpus --config`, `virsh edit`...) back into the observed body at the field the
operator would change, so the planner's diff shows them and the next apply restores git.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from node.lifecycle.status import RuntimeRecord
from reconciler.core.model import JSON, VirtsyncError
from reconciler.core.sensitive import digest_sensitive

APPLIED_NS = "https://virtsync.io/xmlns/domain/v1/applied"
APPLIED_PREFIX = "virtsync-applied"
RUNTIME_NS = "https://virtsync.io/xmlns/domain/v1/runtime"
RUNTIME_PREFIX = "virtsync-runtime"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@dataclass(frozen=True)
class Effective:
    """What the node built from the applied body: total vCPUs and topology, memory, MACs."""

    sockets: int
    cores: int
    threads: int
    memory_kib: int
    macs: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "sockets": self.sockets, "cores": self.cores, "threads": self.threads,
            "memoryKiB": self.memory_kib, "macs": dict(self.macs),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Effective:
        return cls(
            sockets=int(data["sockets"]), cores=int(data["cores"]),
            threads=int(data["threads"]), memory_kib=int(data["memoryKiB"]),
            macs={str(k): str(v) for k, v in dict(data.get("macs", {})).items()},
        )


@dataclass(frozen=True)
class Applied:
    body: Mapping[str, JSON]  # digested: no secret in clear text
    effective: Effective


def applied_element(body: Mapping[str, JSON], effective: Effective) -> etree._Element:
    el = etree.Element(f"{{{APPLIED_NS}}}applied", nsmap={APPLIED_PREFIX: APPLIED_NS})
    payload = {"body": digest_sensitive(dict(body)), "effective": effective.to_json()}
    el.text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return el


def _element(xml: str | bytes | etree._Element) -> etree._Element:
    # An element already parsed is used as it is: node.cluster.host parses each domain's
    # XML once per read, not once per record part (issue 13).
    if isinstance(xml, etree._Element):
        return xml
    return etree.fromstring(xml.encode() if isinstance(xml, str) else xml, _PARSER)


def parse_applied(xml: str | bytes | etree._Element) -> Applied:
    """Read the `<applied>` element as `virDomainGetMetadata` returns it."""
    try:
        el = _element(xml)
        data = json.loads(el.text or "", object_pairs_hook=_shared_strings)
        return Applied(body=data["body"], effective=Effective.from_json(data["effective"]))
    except (etree.XMLSyntaxError, ValueError, KeyError, TypeError) as exc:
        raise VirtsyncError(f"virtsync applied-spec metadata is unreadable: {exc}") from exc


def _shared_strings(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys and short string values are interned: every domain's
    applied body repeats the same keys and enum-like values, and a watch keeps one body
    per domain (issue 13: 10,000 of them)."""
    return {sys.intern(k): sys.intern(v) if isinstance(v, str) and len(v) <= _SHORT else v
            for k, v in pairs}


_SHORT = 40


def runtime_element(rt: RuntimeRecord, *, namespaced: bool = True) -> etree._Element:
    return etree.Element(
        f"{{{RUNTIME_NS}}}runtime" if namespaced else "runtime",
        nsmap={RUNTIME_PREFIX: RUNTIME_NS} if namespaced else None,
        intent=rt.intent,
        failures=str(rt.failures),
        backoffUntil=repr(rt.backoff_until),
        lastStart=repr(rt.last_start),
        lastStop=rt.last_stop,
        created=repr(rt.created),
    )


def runtime_xml(rt: RuntimeRecord) -> str:
    """The record for `virDomainSetMetadata`: without a namespace, because libvirt puts
    the element into the given namespace itself and refuses one that declares it."""
    return etree.tostring(runtime_element(rt, namespaced=False), encoding="unicode")


def parse_runtime(xml: str | bytes | etree._Element | None) -> RuntimeRecord:
    """The runtime record; a domain without one has the empty record."""
    if xml is None or (not isinstance(xml, etree._Element) and not xml):
        return RuntimeRecord()
    try:
        el = _element(xml)
        return RuntimeRecord(
            intent=el.get("intent", ""),
            failures=int(el.get("failures", "0")),
            backoff_until=float(el.get("backoffUntil", "0")),
            last_start=float(el.get("lastStart", "0")),
            last_stop=el.get("lastStop", ""),
            created=float(el.get("created", "0")),
        )
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise VirtsyncError(f"virtsync runtime metadata is unreadable: {exc}") from exc


def decorate(domain: etree._Element, applied: etree._Element, runtime: RuntimeRecord) -> None:
    """Add both records to a built `<domain>` (next to the owner marker)."""
    metadata = domain.find("metadata")
    if metadata is None:
        raise VirtsyncError("domain has no <metadata> (the builder always adds the owner marker)")
    metadata.append(applied)
    metadata.append(runtime_element(runtime))


# ---------------------------------------------------------------- actual facts and drift


@dataclass(frozen=True)
class DomainFacts:
    """Spec-relevant facts read from a domain definition."""

    sockets: int
    cores: int
    threads: int
    vcpus: int
    memory_kib: int
    macs: Mapping[str, str]  # KubeVirt interface name (from alias ua-NAME) → MAC
    disk_serials: Mapping[str, str] = field(default_factory=dict)  # disk name → serial
    # KubeVirt disk name (from alias ua-NAME) → the file it uses
    disk_files: Mapping[str, str] = field(default_factory=dict)


def _parts(root: etree._Element) -> tuple[etree._Element | None, etree._Element | None,
                                           etree._Element | None, list[etree._Element],
                                           list[etree._Element]]:
    """What root.find("vcpu"), find("cpu/topology"), find("memory"),
    findall("devices/interface") and findall("devices/disk") give, in one walk of the
    children instead of five path lookups (issue 13: this runs for every domain of every
    observe)."""
    vcpu = topo = mem = None
    ifaces: list[etree._Element] = []
    disks: list[etree._Element] = []
    for child in root:
        tag = child.tag
        if tag == "vcpu":
            vcpu = child if vcpu is None else vcpu
        elif tag == "memory":
            mem = child if mem is None else mem
        elif tag == "cpu":
            topo = next((t for t in child if t.tag == "topology"), None) if topo is None \
                else topo
        elif tag == "devices":
            for dev in child:
                if dev.tag == "interface":
                    ifaces.append(dev)
                elif dev.tag == "disk":
                    disks.append(dev)
    return vcpu, topo, mem, ifaces, disks


def _device_parts(dev: etree._Element) -> tuple[etree._Element | None, etree._Element | None,
                                                etree._Element | None]:
    """What dev.find("alias"), then dev.find("mac") for an interface or dev.find("source")
    for a disk, then dev.find("serial") give, in one walk of the children (issue 13: three
    path lookups per device of every domain of every observe)."""
    alias = second = serial = None
    want = "mac" if dev.tag == "interface" else "source"
    for child in dev:
        tag = child.tag
        if tag == "alias":
            alias = child if alias is None else alias
        elif tag == want:
            second = child if second is None else second
        elif tag == "serial":
            serial = child if serial is None else serial
    return alias, second, serial


def domain_facts(domain_xml: str | bytes | etree._Element) -> DomainFacts:
    root = _element(domain_xml)
    vcpu, topo, mem, ifaces, disks = _parts(root)
    vcpus = int((vcpu.text if vcpu is not None else None) or "1")
    if topo is not None:
        sockets, cores, threads = (int(topo.get(k, "1")) for k in ("sockets", "cores", "threads"))
    else:
        sockets, cores, threads = vcpus, 1, 1
    memory_kib = _kib(mem.text or "0", mem.get("unit", "KiB")) if mem is not None else 0
    macs: dict[str, str] = {}
    for iface in ifaces:
        alias, mac, _ = _device_parts(iface)
        name = alias.get("name", "") if alias is not None else ""
        if mac is not None and name.startswith("ua-"):
            macs[name[3:]] = (mac.get("address") or "").lower()
    serials: dict[str, str] = {}
    files: dict[str, str] = {}
    for disk in disks:
        alias, source, serial_el = _device_parts(disk)
        name = alias.get("name", "") if alias is not None else ""
        if not name.startswith("ua-"):
            continue
        serial = (serial_el.text or "") if serial_el is not None else None
        if serial:
            serials[name[3:]] = serial
        if source is not None and source.get("file"):
            files[name[3:]] = source.get("file", "")
    return DomainFacts(sockets, cores, threads, vcpus, memory_kib, macs,
                       disk_serials=serials, disk_files=files)


_UNITS = {"b": 1, "bytes": 1, "k": 1024, "kib": 1024, "m": 1024**2, "mib": 1024**2,
          "g": 1024**3, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}


def _kib(value: str, unit: str) -> int:
    return int(value) * _UNITS.get(unit.lower(), 1024) // 1024


def overlay_drift(
    body: Mapping[str, JSON], expected: Effective, actual: DomainFacts, *, uuid: str,
    serial: str,
) -> dict[str, Any]:
    """`body` with every fact that drifted from `expected` written where the operator
    would set it (domain.cpu topology, domain.memory.guest), and the live identity where
    a pin would set it: firmware uuid and serial, interfaces[].macAddress,
    disks[].serial. So a pin equal to the live identity is no change (rule 17), and
    values git leaves unset are dropped again by reconciler.planning.normalize.align_defaults."""
    # Copy only the dicts on the way to what changes (not a deepcopy of the whole body: that
    # was a third of a host-mode observe); untouched subtrees are shared with `body`, which
    # no caller mutates.
    out: dict[str, Any] = dict(body)
    domain = _own(_own(_own(_own(out, "spec"), "template"), "spec"), "domain")
    topo = (actual.sockets, actual.cores, actual.threads)
    if topo != (expected.sockets, expected.cores, expected.threads):
        cpu = _sub(domain, "cpu")
        domain["cpu"] = {**cpu, "sockets": topo[0], "cores": topo[1], "threads": topo[2]}
    if actual.memory_kib != expected.memory_kib:
        memory = _sub(domain, "memory")
        domain["memory"] = {**memory, "guest": f"{actual.memory_kib}Ki"}
    if uuid or serial:
        firmware = _sub(domain, "firmware")
        domain["firmware"] = {**firmware, **({"uuid": uuid} if uuid else {}),
                              **({"serial": serial} if serial else {})}
    if not isinstance(domain.get("devices"), dict):
        return out
    devices = _own(domain, "devices")
    for field_name, key, live in (("interfaces", "macAddress", actual.macs),
                                  ("disks", "serial", actual.disk_serials)):
        items = devices.get(field_name)
        if isinstance(items, list):
            devices[field_name] = [
                {**item, key: live[str(item.get("name"))]}
                if isinstance(item, dict) and str(item.get("name")) in live else item
                for item in items
            ]
    return out


def _sub(parent: dict[str, Any], key: str) -> dict[str, Any]:
    child = parent.get(key)
    return child if isinstance(child, dict) else {}


def _own(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """parent[key] as a fresh shallow copy (set back into `parent`), {} when absent."""
    parent[key] = fresh = dict(_sub(parent, key))
    return fresh
