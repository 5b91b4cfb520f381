"""Pairing: desired objects matched with live ones by key, and a rename found by pinned
identity (firmware UUID or a MAC). Pure; the first step of `make_plan`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.core.model import JSON, Manifest, ObjectKey
from reconciler.core.vmspec import canonical_mac
from reconciler.planning.normalize import get_path
from reconciler.planning.plan_model import Observed


@dataclass(frozen=True)
class Pair:
    key: ObjectKey
    desired: Manifest | None
    live: Observed | None


def pair(desired: Sequence[Manifest], live: Sequence[Observed]) -> list[Pair]:
    """Desired and live objects matched by key; a desired object whose pinned identity
    (firmware UUID or a MAC) matches an unmatched live one of the same kind is that
    object renamed."""
    live_by_key = {o.key: o for o in live}
    desired_keys = {m.key for m in desired}
    pairs: list[Pair] = []
    unmatched: list[Manifest] = []
    for m in desired:
        obs = live_by_key.get(m.key)
        if obs is None:
            unmatched.append(m)
        pairs.append(Pair(m.key, m, obs))
    orphans = {o.key: o for o in live if o.key not in desired_keys}
    by_identity: dict[tuple[str, str], ObjectKey] = {}
    for o in orphans.values():
        for ident in identity_values(o.manifest.body):
            by_identity.setdefault((o.key.kind, ident), o.key)
    renamed: dict[ObjectKey, Observed] = {}
    for m in unmatched:
        for ident in identity_values(m.body):
            old = by_identity.get((m.kind, ident))
            if old is not None and old in orphans:
                renamed[m.key] = orphans.pop(old)
                break
    if renamed:
        pairs = [Pair(p.key, p.desired, renamed.get(p.key, p.live)) for p in pairs]
    pairs.extend(Pair(k, None, o) for k, o in orphans.items())
    return pairs


def identity_values(body: Mapping[str, JSON]) -> list[str]:
    """Pinned identity of a VM body: firmware UUID and interface MACs, lower-cased."""
    out: list[str] = []
    domain = get_path(body, ("spec", "template", "spec", "domain"))
    uuid = get_path(domain, ("firmware", "uuid"))
    if isinstance(uuid, str):
        out.append("uuid:" + uuid.lower())
    interfaces = get_path(domain, ("devices", "interfaces"))
    if isinstance(interfaces, list):
        for iface in interfaces:
            mac = iface.get("macAddress") if isinstance(iface, Mapping) else None
            if isinstance(mac, str):
                out.append("mac:" + canonical_mac(mac))
    return out


