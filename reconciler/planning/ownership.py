"""Who owns and who uses a disk file (safety rule 13), and which files are missing. Pure.

A VM owns the files in its own directory (overlays, scratch disks, seeds) and the claims
of its own dataVolumeTemplates; it merely uses a claim it mounts by name. Deleting a VM
deletes only what it owns and no other object — desired or live, any source, any node —
references; the plan lists each file, deleted or kept with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconciler.core.model import JSON, DiskFile, Manifest, ObjectKey
from reconciler.core.vmspec import VmSpec
from reconciler.planning.classify import Disruption
from reconciler.planning.diff import DISK_FILE, FieldDiff, Sel
from reconciler.planning.normalize import get_path

VOLUMES = ("spec", "template", "spec", "volumes")


@dataclass(frozen=True)
class DiskFate:
    """What deleting a VM does to one of its files: deleted, or kept and why."""

    path: str
    volume: str
    delete: bool
    reason: str


ClaimKey = tuple[str, str]  # (namespace, claim name)
ClaimRefs = Mapping[ClaimKey, frozenset[ObjectKey]]
_CLAIM_SOURCES = (("persistentVolumeClaim", "claimName"), ("dataVolume", "name"))


def _template_names(m: Manifest) -> list[tuple[str, Mapping[str, JSON]]]:
    """(name, spec) of each of a VM's dataVolumeTemplates: the claims it owns."""
    return [(t.name, t.spec) for t in VmSpec.of(m).data_volume_templates]


@dataclass(frozen=True)
class ObjectClaims:
    """The claims one object names, read once per plan (issue 13: planning at 10,000
    VMs read each VM's claims three times): `owned` by its dataVolumeTemplates,
    `referenced` by anything in it (owned ones included; a DataVolume names itself),
    `blank`: the ones it declares that a node can create again, empty (`blank_claims`)."""

    key: ObjectKey
    owned: frozenset[str] = frozenset()
    referenced: frozenset[str] = frozenset()
    blank: frozenset[str] = frozenset()


def object_claims(m: Manifest) -> ObjectClaims:
    """Claim names an object refers to: a VM's volumes and owned templates, a
    DataVolume itself."""
    if m.kind == "DataVolume":
        mine = frozenset({m.name})
        return ObjectClaims(m.key, referenced=mine,
                            blank=mine if _blank(m.body.get("spec")) else frozenset())
    if m.kind != "VirtualMachine":
        return ObjectClaims(m.key)
    templates = _template_names(m)
    owned = frozenset(name for name, _ in templates)
    names = set(owned)
    volumes = get_path(m.body, ("spec", "template", "spec", "volumes"))
    for vol in volumes if isinstance(volumes, list) else ():
        for source, field_name in _CLAIM_SOURCES:
            ref = get_path(vol, (source, field_name))
            if isinstance(ref, str):
                names.add(ref)
    return ObjectClaims(m.key, owned, frozenset(names),
                        frozenset(name for name, spec in templates if _blank(spec)))


def _blank(spec: JSON) -> bool:
    """Declared with a blank source (or none)."""
    source = get_path(spec, ("source",))
    return get_path(spec, ("sourceRef",)) is None and (
        source is None or (isinstance(source, Mapping) and set(source) <= {"blank"}))


def _claims(item: Manifest | ObjectClaims) -> ObjectClaims:
    return item if isinstance(item, ObjectClaims) else object_claims(item)


def claim_depth(desired: Iterable[Manifest | ObjectClaims]) -> dict[ObjectKey, int]:
    """How many owners stand before each VM that mounts a claim another desired VM's
    dataVolumeTemplates declare: apply creates the owner (and so the claim) first. VMs
    that mount no such claim are 0 and left out; a cycle stops counting where it closes.
    Takes the manifests or their claims (`object_claims`, when the plan has them)."""
    vms = [c for c in map(_claims, desired) if c.key.kind == "VirtualMachine"]
    owner = {(c.key.namespace, name): c.key for c in vms for name in c.owned}
    # Only VMs that mount another VM's claim (most mount none: they stay 0).
    needs = {c.key: wants for c in vms
             if (wants := {owner[(c.key.namespace, n)] for n in c.referenced
                           if owner.get((c.key.namespace, n), c.key) != c.key})}
    depth: dict[ObjectKey, int] = {}

    def of(key: ObjectKey, seen: frozenset[ObjectKey]) -> int:
        if key not in depth:
            depth[key] = max((1 + of(o, seen | {key}) for o in needs.get(key, ())
                              if o not in seen), default=0)
        return depth[key]

    for key in needs:
        of(key, frozenset())
    return {k: d for k, d in depth.items() if d}


def claim_users(desired: Iterable[Manifest | ObjectClaims],
                live: Iterable[Manifest | ObjectClaims]) -> dict[ClaimKey, frozenset[ObjectKey]]:
    """Every object (desired or live, on any node) that references each claim."""
    users: dict[ClaimKey, set[ObjectKey]] = {}
    for c in map(_claims, [*desired, *live]):
        for name in c.referenced:
            users.setdefault((c.key.namespace, name), set()).add(c.key)
    return {k: frozenset(v) for k, v in users.items()}


def disk_fates(m: Manifest, disks: Iterable[DiskFile],
               claim_refs: ClaimRefs) -> tuple[DiskFate, ...]:
    """Which files of the deleted VM `m` go: its own (overlay, scratch, seed, leftovers in
    its directory) and the claims it owns (dataVolumeTemplates) that no other desired or
    live object references. Everything else is kept, with the reason."""
    owned = {name for name, _ in _template_names(m)}
    fates: dict[str, DiskFate] = {}
    for d in sorted(disks):
        if not d.exists or d.path in fates:
            continue
        if not d.is_claim:
            fates[d.path] = DiskFate(d.path, d.volume, True, "its own file")
            continue
        others = sorted(str(k) for k in claim_refs.get((m.namespace, d.claim), ())
                        if k != m.key)
        why = [f"in use by {', '.join(others)}"] if others else []
        if d.claim not in owned:
            why.append("not owned by this VM (no dataVolumeTemplate of that name)")
        fates[d.path] = DiskFate(d.path, d.volume, not why,
                                 f"claim {d.claim} is " + "; ".join(why) if why
                                 else f"owned claim {d.claim}, used by no other VM")
    return tuple(sorted(fates.values(), key=lambda f: (not f.delete, f.path)))


def delete_outcome(fates: tuple[DiskFate, ...], cause: str) -> tuple[Disruption, str]:
    deleted = sum(f.delete for f in fates)
    kept = len(fates) - deleted
    if not deleted:
        return Disruption.REPLACE, "the domain is undefined; no disk file of its own is " \
            "deleted" + (f" ({kept} kept: in use or not owned)" if kept else "")
    return Disruption.DATA_LOSS, cause + (f"; {kept} kept (in use or not owned)" if kept
                                          else "")


def blank_claims(desired: Iterable[Manifest | ObjectClaims]) -> frozenset[ClaimKey]:
    """Claims a node can create again, empty: declared with a blank source (or none).
    Takes the manifests or their claims (`object_claims`, when the plan has them)."""
    return frozenset((c.key.namespace, name) for c in map(_claims, desired)
                     for name in c.blank)


def missing_files(namespace: str, disks: Iterable[DiskFile],
                  blank: frozenset[ClaimKey]) -> list[FieldDiff]:
    """A live VM's disk files that are gone: never "up to date". The next define creates
    them again — blank — where that is possible; the plan says which."""
    out: list[FieldDiff] = []
    for d in disks:
        if d.exists or not d.volume:
            continue
        if d.is_claim and (namespace, d.claim) not in blank:
            after = "cannot be created again (no blank size declared): restore the file"
        elif d.is_claim or d.source == "emptyDisk":
            after = "created again, blank"
        else:
            after = "written again"
        out.append(FieldDiff((*VOLUMES, Sel("name", d.volume), DISK_FILE),
                             f"missing: {d.path}", after))
    return out
