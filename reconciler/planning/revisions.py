"""Pin each VM to the instancetype and preference content it is applied with.

KubeVirt snapshots a VM's instancetype and preference into a ControllerRevision and
records its name in `spec.instancetype.revisionName` / `spec.preference.revisionName`.
virtsync does the same with a content hash: `<name>-<first 10 hex of sha256(spec)>`.
So editing an instancetype in git changes the revisionName of every VM that uses it, and
the plan shows those VMs (class restart: "instancetype changed") instead of silently
leaving them on the old sizes. A revisionName written in git is kept as it is. Pure.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from reconciler.core.model import JSON, Manifest, ObjectKey
from reconciler.core.vmspec import VmSpec

# field → (kind when `kind` is omitted, the namespaced kind)
_REFERENCES = {
    "instancetype": ("VirtualMachineClusterInstancetype", "VirtualMachineInstancetype"),
    "preference": ("VirtualMachineClusterPreference", "VirtualMachinePreference"),
}


def revision_name(name: str, spec: JSON) -> str:
    raw = json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()
    return f"{name}-{hashlib.sha256(raw).hexdigest()[:10]}"


def _referenced(vm: Manifest, field: str,
                index: Mapping[ObjectKey, Manifest]) -> Manifest | None:
    ref = VmSpec.of(vm).reference(field)
    if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str):
        return None
    cluster_kind, namespaced_kind = _REFERENCES[field]
    kind = str(ref.get("kind") or cluster_kind)
    for candidate in (cluster_kind, namespaced_kind):
        if candidate.lower() == kind.lower():
            namespace = vm.namespace if candidate == namespaced_kind else ""
            return index.get(ObjectKey(candidate, namespace, ref["name"]))
    return None


REFERENCED_KINDS = frozenset(k for pair in _REFERENCES.values() for k in pair)


def dependents(changed: Collection[ObjectKey],
               index: Mapping[ObjectKey, Manifest]) -> set[ObjectKey]:
    """VMs in `index` that reference any of the `changed` instancetypes/preferences."""
    wanted = {k for k in changed if k.kind in REFERENCED_KINDS}
    if not wanted:
        return set()
    return {m.key for m in index.values() if m.kind == "VirtualMachine"
            and any((t := _referenced(m, f, index)) is not None and t.key in wanted
                    for f in _REFERENCES)}


def with_revisions(manifests: Sequence[Manifest],
                   index: Mapping[ObjectKey, Manifest] | None = None) -> tuple[Manifest, ...]:
    """The manifests, VMs carrying the revisionName of what they reference (looked up in
    `index`, by default the manifests themselves)."""
    if index is None:
        index = {m.key: m for m in manifests}
    out: list[Manifest] = []
    for m in manifests:
        if m.kind != "VirtualMachine":
            out.append(m)
            continue
        body: dict[str, JSON] | None = None
        for field in _REFERENCES:
            target = _referenced(m, field, index)
            ref = m.body["spec"][field] if target is not None else None
            if target is None or not isinstance(ref, Mapping) or ref.get("revisionName"):
                continue
            if body is None:
                body = copy.deepcopy(dict(m.body))
            body["spec"][field]["revisionName"] = revision_name(target.name,
                                                                target.body.get("spec"))
        out.append(m if body is None else replace(m, body=body))
    return tuple(out)


def without_revisions(m: Manifest, index: Mapping[ObjectKey, Manifest]) -> Manifest:
    """`m` without the revisionNames `with_revisions` added (a revisionName git wrote
    itself stays): on KubeVirt a revisionName names a ControllerRevision KubeVirt creates,
    so the kubevirt backend sends the VM as git holds it, as `virtsync render` does."""
    if m.kind != "VirtualMachine":
        return m
    body: dict[str, JSON] | None = None
    for field in _REFERENCES:
        target = _referenced(m, field, index)
        ref = m.body["spec"][field] if target is not None else None
        if target is None or not isinstance(ref, Mapping) or ref.get("revisionName") != \
                revision_name(target.name, target.body.get("spec")):
            continue
        if body is None:
            body = copy.deepcopy(dict(m.body))
        del body["spec"][field]["revisionName"]
    return m if body is None else replace(m, body=body)
