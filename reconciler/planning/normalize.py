"""Normalization: make equal things compare equal before they are diffed.

`normalize(kind, body)` returns a fresh copy in which
- fields a live system fills in are gone (status, metadata uid/resourceVersion/generation/
  creationTimestamp/managedFields/selfLink, server-owned annotations);
- null values and empty lists are absent, and so is `{}` for plain container keys
  (`resources: {}`), but not for marker objects whose presence means something
  (`masquerade: {}`, `pod: {}`);
- lists of named items (disks, interfaces, volumes, networks, ...) become `Keyed`
  mappings by name, so matching is by name, not position; the order is kept for the
  lists where it matters to the guest (disks, interfaces);
- quantities compare by value (`1Gi` == `1024Mi`, see `reconciler.core.quantity`);
- MAC addresses and the firmware UUID compare case-insensitively (`02-AB-..` ==
  `02:ab:..`), so a pin equal to the live identity is no change;
- a VirtualMachine's `running: true/false` becomes `runStrategy: Always/Halted`, and no
  run strategy at all is KubeVirt's default, `Halted`.

`align_defaults(desired, live)` then drops from the live side the values a live system
defaults when git leaves them unset (firmware UUID/serial, machine type, architecture,
MACs, disk serials, finalizers): not a change, but identity ones are reported as
"not pinned in git".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.core.model import JSON
from reconciler.core.model import get_path as get_path  # where planning always had it
from reconciler.core.power import spec_run_strategy
from reconciler.core.quantity import as_quantity
from reconciler.core.vmspec import canonical_mac

# Top-level metadata fields the API server or KubeVirt writes; never declared in git.
SERVER_METADATA = frozenset({
    "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
    "deletionTimestamp", "deletionGracePeriodSeconds",
})
SERVER_ANNOTATIONS = frozenset({
    "kubevirt.io/latest-observed-api-version",
    "kubevirt.io/storage-observed-api-version",
    "kubectl.kubernetes.io/last-applied-configuration",
})
SERVER_ANNOTATION_PREFIXES = ("cdi.kubevirt.io/storage.",)

# List-valued keys whose items are matched by a name field rather than by position.
KEYED_LISTS: Mapping[str, tuple[str, ...]] = {
    "disks": ("name",), "interfaces": ("name",), "volumes": ("name",),
    "networks": ("name",), "gpus": ("name",), "hostDevices": ("name",),
    "filesystems": ("name",), "inputs": ("name",),
    "dataVolumeTemplates": ("metadata", "name"),
}
# Of those, the ones whose order the guest sees (boot order, PCI slots, NIC numbering).
ORDERED_LISTS = frozenset({"disks", "interfaces"})

# Container keys for which `{}` means exactly the same as leaving the key out.
EMPTY_IS_ABSENT = frozenset({
    "metadata", "labels", "annotations", "resources", "requests", "limits", "devices",
    "features", "firmware", "machine", "cpu", "memory", "clock", "nodeSelector",
    "affinity", "template", "spec", "domain", "status",
})

# Keys whose scalar value is a Kubernetes quantity.
QUANTITY_KEYS = frozenset({
    "guest", "maxGuest", "memory", "storage", "capacity", "cpu", "pageSize",
    "ephemeral-storage", "overhead",
})

VM_KIND = "VirtualMachine"


class Keyed(dict[str, Any]):
    """A list of named items held as name → item. `ordered` says whether the original
    order matters; `names` is that order."""

    __slots__ = ("field", "ordered")
    field: tuple[str, ...]
    ordered: bool

    @property
    def names(self) -> list[str]:
        return list(self)


def normalize(kind: str, body: Mapping[str, JSON],
              namespace: str | None = None) -> dict[str, JSON]:
    """A normalized copy of one object's body (see the module docstring). Pure.

    `namespace` is the object's effective namespace (the loader's default applied), so
    an omitted namespace equals the one a live system reports."""
    out: dict[str, JSON] = {}
    for key, value in body.items():
        if key == "status":
            continue
        if key == "metadata" and isinstance(value, Mapping):
            value = _strip_metadata(value)
            if namespace is not None:
                value.pop("namespace", None)
                if namespace:
                    value["namespace"] = namespace
        norm = _value(key, value)
        if not _absent(key, norm):
            out[key] = norm
    if kind == VM_KIND:
        spec = out.setdefault("spec", {})  # an empty spec still has a run strategy
        if isinstance(spec, dict):
            _run_strategy(spec)
    return out


def _strip_metadata(meta: Mapping[str, JSON]) -> dict[str, JSON]:
    out = {k: v for k, v in meta.items() if k not in SERVER_METADATA}
    annotations = out.get("annotations")
    if isinstance(annotations, Mapping):
        out["annotations"] = {
            k: v for k, v in annotations.items()
            if k not in SERVER_ANNOTATIONS and not k.startswith(SERVER_ANNOTATION_PREFIXES)
        }
    return out


def _run_strategy(spec: dict[str, JSON]) -> None:
    strategy = spec_run_strategy(spec)
    spec.pop("running", None)
    if "runStrategy" not in spec:
        spec["runStrategy"] = str(strategy)


def _absent(key: str, value: JSON) -> bool:
    if value is None:
        return True
    if isinstance(value, list | Keyed):
        return len(value) == 0
    return isinstance(value, dict) and not value and key in EMPTY_IS_ABSENT


def _value(key: str | None, value: JSON) -> JSON:
    if isinstance(value, Mapping):
        out: dict[str, JSON] = {}
        for k, v in value.items():
            norm = _value(k, v)
            if not _absent(k, norm):
                out[k] = norm
        return out
    if isinstance(value, list):
        items = [_value(None, v) for v in value]
        field = KEYED_LISTS.get(key) if key is not None else None
        if field is not None:
            keyed = _keyed(key or "", field, items)
            if keyed is not None:
                return keyed
        return items
    if key == "macAddress" and isinstance(value, str):
        return canonical_mac(value)
    if key == "uuid" and isinstance(value, str):
        return value.lower()
    if key in QUANTITY_KEYS:
        quantity = as_quantity(value)
        if quantity is not None:
            return quantity
    return value


def _keyed(key: str, field: tuple[str, ...], items: list[JSON]) -> Keyed | None:
    """name → item, or None when some item has no string name or names repeat (then the
    list is compared by position; validation reports the duplicate)."""
    out = Keyed()
    out.field = field
    out.ordered = key in ORDERED_LISTS
    for item in items:
        name = get_path(item, field)
        if not isinstance(name, str) or name in out:
            return None
        out[name] = item
    return out


# --- values a live system defaults when git leaves them unset --------------------------

ANY = "*"  # one Keyed item, any name


@dataclass(frozen=True)
class Defaulted:
    """A field the live system fills in by itself. `path` uses ANY for keyed items.
    `identity` fields are reported as "not pinned in git" when git omits them."""

    path: tuple[str, ...]
    identity: bool
    what: str


DEFAULTED: tuple[Defaulted, ...] = (
    Defaulted(("spec", "template", "spec", "domain", "firmware", "uuid"), True,
              "firmware UUID"),
    Defaulted(("spec", "template", "spec", "domain", "firmware", "serial"), True,
              "firmware serial"),
    Defaulted(("spec", "template", "spec", "domain", "devices", "interfaces", ANY,
               "macAddress"), True, "MAC address"),
    Defaulted(("spec", "template", "spec", "domain", "devices", "disks", ANY, "serial"), True,
              "disk serial"),
    Defaulted(("spec", "template", "spec", "domain", "machine", "type"), False,
              "machine type"),
    Defaulted(("spec", "template", "spec", "architecture"), False, "architecture"),
    Defaulted(("metadata", "finalizers"), False, "finalizers"),
    # KubeVirt's controller (and virtsync's apply) record which instancetype/preference
    # content a VM runs with; git usually leaves it out.
    Defaulted(("spec", "instancetype", "revisionName"), False, "instancetype revision"),
    Defaulted(("spec", "preference", "revisionName"), False, "preference revision"),
)


@dataclass(frozen=True)
class Unpinned:
    """A live identity value git does not declare (kept as is; not a change)."""

    path: tuple[str, ...]
    what: str


def align_defaults(desired: Mapping[str, JSON], live: Mapping[str, JSON],
                   kind: str) -> tuple[dict[str, JSON], tuple[Unpinned, ...]]:
    """`live` without the defaulted values git leaves unset, plus the identity ones among
    them. Both arguments are normalized bodies; neither is modified."""
    result: dict[str, JSON] = dict(live)
    unpinned: list[Unpinned] = []
    if kind != VM_KIND:
        return result, ()
    for rule in DEFAULTED:
        for concrete in _expand(result, rule.path):
            if _has(desired, concrete) or not _has(result, concrete):
                continue
            result = _without(result, concrete)
            if rule.identity:
                unpinned.append(Unpinned(concrete, rule.what))
    return result, tuple(unpinned)


def _expand(doc: JSON, path: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Concrete paths in `doc` matching `path` (ANY expands over Keyed item names)."""
    out: list[tuple[str, ...]] = [()]
    node_sets: list[JSON] = [doc]
    for part in path:
        next_out: list[tuple[str, ...]] = []
        next_nodes: list[JSON] = []
        for prefix, node in zip(out, node_sets, strict=True):
            if not isinstance(node, Mapping):
                continue
            names = list(node) if part == ANY else [part]
            for name in names:
                if name in node:
                    next_out.append((*prefix, name))
                    next_nodes.append(node[name])
        out, node_sets = next_out, next_nodes
    return out


def _has(doc: JSON, path: tuple[str, ...]) -> bool:
    for part in path:
        if not isinstance(doc, Mapping) or part not in doc:
            return False
        doc = doc[part]
    return True


def _without(doc: Mapping[str, JSON], path: tuple[str, ...]) -> dict[str, JSON]:
    """A copy of `doc` without `path`, copying only along the path; a container left
    empty is dropped the same way normalize drops it."""
    head, rest = path[0], path[1:]
    out: dict[str, JSON] = _copy_mapping(doc)
    if not rest:
        out.pop(head, None)
        return out
    child = out.get(head)
    if isinstance(child, Mapping):
        new_child = _without(child, rest)
        if _absent(head, new_child) or (not new_child and isinstance(child, Keyed)):
            out.pop(head)
        else:
            out[head] = new_child
    return out


def _copy_mapping(doc: Mapping[str, JSON]) -> dict[str, JSON]:
    if isinstance(doc, Keyed):
        copy = Keyed(doc)
        copy.field = doc.field
        copy.ordered = doc.ordered
        return copy
    return dict(doc)
