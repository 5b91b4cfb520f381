"""Checks JSON Schema cannot express: names that must match or be unique, fields that
exclude each other, and identity values that must be unique across the whole tree.

Pure. `check_manifest` and `facts` also run on documents the schema refused, so that one
run reports every problem: no read may assume a shape (`_map`, `_items`, `_get` turn a
wrong type or null into "unset"; the schema reports the wrong type itself). The rules follow what KubeVirt's admission webhook
rejects for a VirtualMachine, limited to the ones an operator actually hits.

Issue paths point at the offending node: a disk's name for a missing volume, the second
occurrence for a duplicate, the deprecated `running` when it is combined with
`runStrategy`, the explicit field that an instancetype already provides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from reconciler.check.metanames import (
    MAX_CLAIM_NAME,
    MAX_VM_NAME,
    MAX_VOLUME_NAME,
    metadata_issues,
    too_long,
)
from reconciler.core import hostdisk
from reconciler.core.migration import annotation_issues
from reconciler.core.model import (
    CDI_GROUP,
    JSON,
    KUBEVIRT_GROUP,
    Issue,
    JSONPath,
    Manifest,
    ManifestFacts,
    SourceRef,
    UniqueClaim,
    format_path,
)

VMI_SPEC: JSONPath = ("spec", "template", "spec")
DOMAIN: JSONPath = (*VMI_SPEC, "domain")
DEVICES: JSONPath = (*DOMAIN, "devices")

_DISK_TARGETS = ("disk", "cdrom", "lun")
_INTERFACE_BINDINGS = ("bridge", "masquerade", "sriov", "slirp", "macvtap", "passt",
                       "passtBinding", "binding")

CLAIM_RULES: Mapping[str, str] = {
    "object": "semantic.duplicate-object",
    "firmware uuid": "semantic.duplicate-uuid",
    "firmware serial": "semantic.duplicate-serial",
    "MAC address": "semantic.duplicate-mac",
    "disk serial": "semantic.duplicate-disk-serial",
    "DataVolume": "semantic.duplicate-datavolume",
}


def _get(node: Any, *keys: str | int) -> Any:
    for key in keys:
        # A parsed document's mappings are dicts: the exact-type test first spares the
        # ABC's isinstance (~0.3 µs, ~100 per VM; issue 13), with the same answer.
        if node.__class__ is not dict and not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _items(node: Any) -> list[Any]:
    return node if isinstance(node, list) else []


def _map(node: Any) -> Mapping[str, Any]:
    return node if node.__class__ is dict or isinstance(node, Mapping) else {}


def _is_vm(m: Manifest) -> bool:
    return m.group == KUBEVIRT_GROUP and m.kind == "VirtualMachine"


# --------------------------------------------------------------------------- per document


def check_manifest(m: Manifest) -> list[Issue]:
    """Semantic problems of one document (schema-valid or not)."""
    issues = [*metadata_issues(m.body.get("metadata"), ("metadata",)),
              *_name_lengths(m)]
    if hostdisk.is_cluster(m):
        return issues + hostdisk.check_cluster(m)
    if not _is_vm(m):
        return issues
    body = m.body
    vmi = _map(_get(body, *VMI_SPEC))
    domain = _map(vmi.get("domain"))
    devices = _map(domain.get("devices"))
    issues += metadata_issues(_get(body, "spec", "template", "metadata"),
                              ("spec", "template", "metadata"))
    issues += _run_strategy(body)
    issues += _unique_names(vmi, devices)
    issues += _disks_and_volumes(vmi, devices)
    issues += _interfaces_and_networks(vmi, devices)
    issues += _boot_order(devices)
    issues += _instancetype_conflicts(body, domain)
    issues += annotation_issues(body)  # migration.virtsync.io/<field> (issue 10)
    return issues


def _name_lengths(m: Manifest) -> Iterator[Issue]:
    """Names that become libvirt domain names and file names (see reconciler.check.metanames)."""
    name = ("metadata", "name")
    if m.group == CDI_GROUP and m.kind == "DataVolume":
        yield from too_long(name, "a DataVolume name", m.name, MAX_CLAIM_NAME,
                            "it names a disk file on the node")
    if not _is_vm(m):
        return
    yield from too_long(name, "a VirtualMachine name", m.name, MAX_VM_NAME,
                        "KubeVirt uses it as a label value and host name")
    for i, tmpl in enumerate(_items(_get(m.body, "spec", "dataVolumeTemplates"))):
        yield from too_long(("spec", "dataVolumeTemplates", i, *name), "a DataVolume name",
                            _get(tmpl, *name), MAX_CLAIM_NAME, "it names a disk file on the node")
    for i, vol in enumerate(_items(_get(m.body, *VMI_SPEC, "volumes"))):
        base = (*VMI_SPEC, "volumes", i)
        yield from too_long((*base, "name"), "a volume name", _get(vol, "name"),
                            MAX_VOLUME_NAME, "it names a disk file on the node")
        for source, field in (("persistentVolumeClaim", "claimName"), ("dataVolume", "name")):
            yield from too_long((*base, source, field), "a claim name", _get(vol, source, field),
                                MAX_CLAIM_NAME, "it names a disk file on the node")


def _run_strategy(body: Mapping[str, JSON]) -> list[Issue]:
    spec = _map(body.get("spec"))
    if "running" in spec and spec["running"] is not None and spec.get("runStrategy"):
        return [Issue(("spec", "running"),
                      "running and runStrategy are mutually exclusive; remove the "
                      "deprecated running and keep runStrategy",
                      "semantic.running-and-runstrategy")]
    return []


def _named(items: list[Any], base: JSONPath) -> Iterator[tuple[int, str, JSONPath]]:
    for i, item in enumerate(items):
        name = _get(item, "name")
        if isinstance(name, str):
            yield i, name, (*base, i, "name")


def _unique_names(vmi: Mapping[str, Any], devices: Mapping[str, Any]) -> list[Issue]:
    lists = (
        ("disk", devices.get("disks"), (*DEVICES, "disks")),
        ("filesystem", devices.get("filesystems"), (*DEVICES, "filesystems")),
        ("interface", devices.get("interfaces"), (*DEVICES, "interfaces")),
        ("volume", vmi.get("volumes"), (*VMI_SPEC, "volumes")),
        ("network", vmi.get("networks"), (*VMI_SPEC, "networks")),
    )
    issues: list[Issue] = []
    for what, items, base in lists:
        first: dict[str, int] = {}
        for i, name, path in _named(_items(items), base):
            if name in first:
                issues.append(Issue(path, f'duplicate {what} name "{name}" (also '
                                    f"{format_path((*base, first[name]))})",
                                    "semantic.duplicate-name"))
            else:
                first[name] = i
    return issues


def _suggest(name: str, candidates: Sequence[str]) -> str:
    import difflib  # only for a finding: a valid file never needs it (issue 13)

    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


def _disks_and_volumes(vmi: Mapping[str, Any], devices: Mapping[str, Any]) -> list[Issue]:
    """Every disk needs its volume. A volume without a disk is legal: KubeVirt's defaults
    (SetDefaultVolumeDisk) give it a plain disk, so the domain builder must do the same."""
    disks = _items(devices.get("disks"))
    volumes = _items(vmi.get("volumes"))
    volume_names = [n for _, n, _ in _named(volumes, ())]
    issues: list[Issue] = []
    for i, name, path in _named(disks, (*DEVICES, "disks")):
        if name not in volume_names:
            issues.append(Issue(path, f'disk "{name}" has no volume of that name in '
                                f"spec.template.spec.volumes{_suggest(name, volume_names)}",
                                "semantic.disk-volume-missing"))
        targets = [k for k, v in disks[i].items() if k in _DISK_TARGETS and v is not None]
        if len(targets) > 1:
            issues.append(Issue((*DEVICES, "disks", i, targets[1]),
                                f'disk "{name}" sets more than one target type '
                                f"({', '.join(targets)}); keep one",
                                "semantic.disk-multiple-targets"))
    for i, name, _path in _named(volumes, (*VMI_SPEC, "volumes")):
        volume = volumes[i]
        sources = [k for k, v in volume.items() if k != "name" and v is not None]
        if len(sources) > 1:
            issues.append(Issue((*VMI_SPEC, "volumes", i, sources[1]),
                                f'volume "{name}" sets more than one source '
                                f"({', '.join(sources)}); keep one",
                                "semantic.volume-multiple-sources"))
    return issues


def _interfaces_and_networks(vmi: Mapping[str, Any],
                             devices: Mapping[str, Any]) -> list[Issue]:
    interfaces = _items(devices.get("interfaces"))
    networks = _items(vmi.get("networks"))
    by_name: dict[str, Any] = {}
    for i, n, _ in _named(networks, ()):
        by_name.setdefault(n, networks[i])  # a duplicate is reported by _unique_names
    iface_names = {n for _, n, _ in _named(interfaces, ())}
    issues: list[Issue] = []
    for i, name, path in _named(interfaces, (*DEVICES, "interfaces")):
        network = by_name.get(name)
        if network is None:
            issues.append(Issue(path, f'interface "{name}" has no network of that name in '
                                f"spec.template.spec.networks{_suggest(name, list(by_name))}",
                                "semantic.interface-network-missing"))
            continue
        bindings = [k for k, v in interfaces[i].items()
                    if k in _INTERFACE_BINDINGS and v is not None]  # document order
        if len(bindings) > 1:
            issues.append(Issue((*DEVICES, "interfaces", i, bindings[1]),
                                f'interface "{name}" sets more than one binding '
                                f"({', '.join(bindings)}); keep one",
                                "semantic.interface-multiple-bindings"))
        elif _get(interfaces[i], "masquerade") is not None and network.get("pod") is None:
            issues.append(Issue((*DEVICES, "interfaces", i, "masquerade"),
                                f'interface "{name}" uses masquerade, which needs a pod '
                                "network", "semantic.masquerade-needs-pod-network"))
    pods = 0
    for i, name, path in _named(networks, (*VMI_SPEC, "networks")):
        if name not in iface_names:
            issues.append(Issue(path, f'network "{name}" is not used by any interface'
                                f"{_suggest(name, sorted(iface_names))}",
                                "semantic.network-unused"))
        if _get(networks[i], "pod") is not None:
            pods += 1
            if pods == 2:
                issues.append(Issue((*VMI_SPEC, "networks", i, "pod"),
                                    "more than one pod network; a VM may have at most one",
                                    "semantic.multiple-pod-networks"))
    return issues


def _boot_order(devices: Mapping[str, Any]) -> list[Issue]:
    seen: dict[int, JSONPath] = {}
    issues: list[Issue] = []
    for key in ("disks", "interfaces"):
        for i, item in enumerate(_items(devices.get(key))):
            order = _get(item, "bootOrder")
            if not isinstance(order, int) or isinstance(order, bool):
                continue  # unset, or a wrong type the schema reports
            path = (*DEVICES, key, i, "bootOrder")
            if order < 1:
                issues.append(Issue(path, f"bootOrder must be 1 or more, got {order}",
                                    "semantic.boot-order-invalid"))
            elif order in seen:
                issues.append(Issue(path, f"bootOrder {order} is already used by "
                                    f"{format_path(seen[order][:-1])}",
                                    "semantic.duplicate-boot-order"))
            else:
                seen[order] = path
    return issues


def _instancetype_conflicts(body: Mapping[str, JSON],
                            domain: Mapping[str, Any]) -> list[Issue]:
    """With an instancetype, CPU and memory come from it; KubeVirt rejects both sources
    (pkg/instancetype/apply: cpu topology, cpu/memory requests and limits)."""
    if not _get(body, "spec", "instancetype"):
        return []
    name = _get(body, "spec", "instancetype", "name")
    issues: list[Issue] = []

    def conflict(path: JSONPath) -> None:
        issues.append(Issue(path, f"{format_path(path)} conflicts with instancetype "
                            f'"{name}", which sets CPU and memory; remove it',
                            "semantic.instancetype-conflict"))

    # KubeVirt also rejects memory.guest, but its own shipped examples set it to the
    # instancetype's value; the instancetype lives in another document, so we cannot
    # compare here and accept it (the node layer must prefer the instancetype's value).
    cpu = _map(domain.get("cpu"))
    for topology in ("sockets", "cores", "threads"):
        if cpu.get(topology):
            conflict((*DOMAIN, "cpu", topology))
    for section in ("requests", "limits"):
        res = _map(_get(domain, "resources", section))
        for resource in ("cpu", "memory"):
            if resource in res:
                conflict((*DOMAIN, "resources", section, resource))
    return issues


# --------------------------------------------------------------------------- across the tree


def _mac(value: str) -> str:
    return value.strip().lower().replace("-", ":")


def _datavolume_claims(m: Manifest) -> list[UniqueClaim]:
    """A DataVolume name is unique per namespace and owned by one object (KubeVirt): a
    DataVolume document, or one VM's dataVolumeTemplate. Two owners would silently share
    one disk file, and pruning either would delete the other's data (safety rule 13)."""
    if m.kind == "DataVolume":
        return [UniqueClaim("DataVolume", f"{m.namespace}/{m.name}", ("metadata", "name"))]
    if not _is_vm(m):
        return []
    out = []
    for i, tmpl in enumerate(_items(_get(m.body, "spec", "dataVolumeTemplates"))):
        name = _get(tmpl, "metadata", "name")
        if isinstance(name, str) and name:
            out.append(UniqueClaim("DataVolume", f"{m.namespace}/{name}",
                                   ("spec", "dataVolumeTemplates", i, "metadata", "name")))
    return out


def facts(m: Manifest) -> ManifestFacts:
    """The identity values this document claims (see model.UniqueClaim)."""
    claims = [UniqueClaim("object", str(m.key), ("metadata", "name"))]
    claims += _datavolume_claims(m)
    if _is_vm(m):
        domain = _map(_get(m.body, *DOMAIN))
        firmware = _map(domain.get("firmware"))
        uuid = firmware.get("uuid")
        if isinstance(uuid, str) and uuid:
            claims.append(UniqueClaim("firmware uuid", uuid.lower(), (*DOMAIN, "firmware", "uuid")))
        serial = firmware.get("serial")
        if isinstance(serial, str) and serial:
            claims.append(UniqueClaim("firmware serial", serial,
                                      (*DOMAIN, "firmware", "serial")))
        devices = _map(domain.get("devices"))
        for i, iface in enumerate(_items(devices.get("interfaces"))):
            mac = _get(iface, "macAddress")
            if isinstance(mac, str) and mac:
                claims.append(UniqueClaim("MAC address", _mac(mac),
                                          (*DEVICES, "interfaces", i, "macAddress")))
        for i, disk in enumerate(_items(devices.get("disks"))):
            disk_serial = _get(disk, "serial")
            if isinstance(disk_serial, str) and disk_serial:
                claims.append(UniqueClaim("disk serial", disk_serial,
                                          (*DEVICES, "disks", i, "serial")))
    return ManifestFacts(m.key, m.source, tuple(claims), hostdisk.host_paths(m))


_CLAIM_HINTS: Mapping[str, str] = {
    "DataVolume": ("; a DataVolume has one owner: to share the disk, mount it from the other "
                   "VM with a dataVolume or persistentVolumeClaim volume"),
}
LineOf = Callable[[SourceRef, JSONPath], int]


def _where(ref: SourceRef, here: SourceRef, line: int = 0) -> str:
    at = f", line {line}" if line else ""
    if ref.file == here.file:
        return f"document {ref.doc + 1} of this file{at}"
    if line:
        return f"{ref.file}:{line}" + (f", document {ref.doc + 1}" if ref.doc else "")
    return ref.file if ref.doc == 0 else f"{ref.file}, document {ref.doc + 1}"


def check_unique(all_facts: Sequence[ManifestFacts],
                 line_of: LineOf | None = None) -> list[tuple[SourceRef, Issue]]:
    """Values claimed twice anywhere in the tree. The first claim (in file, document order)
    wins; every later one is reported, naming the first object and its file (and line,
    when `line_of` can locate a path in a file)."""
    first: dict[tuple[str, str], tuple[ManifestFacts, UniqueClaim]] = {}
    out: list[tuple[SourceRef, Issue]] = []
    for f in sorted(all_facts, key=lambda f: f.source):
        for claim in f.claims:
            slot = (claim.what, claim.value)
            if slot not in first:
                first[slot] = (f, claim)
                continue
            owner, owner_claim = first[slot]
            line = line_of(owner.source, owner_claim.path) if line_of else 0
            if claim.what == "object":
                message = (f"{f.key} is defined twice; first in "
                           f"{_where(owner.source, f.source, line)}")
            elif owner.source == f.source:
                message = (f"{claim.what} {claim.value} is already used at "
                           f"{format_path(owner_claim.path)} of this object")
            else:
                message = (f"{claim.what} {claim.value} is already used by {owner.key} "
                           f"({_where(owner.source, f.source, line)})")
            message += _CLAIM_HINTS.get(claim.what, "")
            out.append((f.source, Issue(claim.path, message, CLAIM_RULES[claim.what])))
    return out
