"""The desired side as the planner compares it, kept between a long-lived caller's plans.

Backends hold secrets only as digests (rule 10), so every plan compares the desired
bodies with their secrets digested too. At 10,000 VMs that walk of every body was a
third of a watch resync's planning (issue 13), for bodies that did not change. A
`PlannedBodies` remembers each key's digested manifest while the tree hands the same
manifest object (a changed file is a new object: digested again), and shares every
secret-free subtree with the tree's own body instead of copying it. The same for each
VM's demand on a node (the placement step reads every VM's spec and instancetype).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import cast

from reconciler.core.model import JSON, Manifest, ObjectKey
from reconciler.core.sensitive import digest_sensitive_shared
from reconciler.core.vmspec import VmSpec
from reconciler.planning.schedule import Request, instancetype_of, request_of
from reconciler.tree.desired import Desired


class PlannedBodies:
    def __init__(self) -> None:
        self._by_key: dict[ObjectKey, tuple[Manifest, Manifest]] = {}
        # each VM's demand on a node (the placement step), with the VM and instancetype
        # objects it was read from
        self._requests: dict[ObjectKey, tuple[Manifest, Manifest | None, Request]] = {}

    def request(self, vm: Manifest, refs: Mapping[ObjectKey, Manifest]) -> Request:
        """`request_of(vm, refs)`, read again only when the VM's or its instancetype's
        manifest is another object (its file changed)."""
        itype = instancetype_of(VmSpec.of(vm), refs)
        known = self._requests.get(vm.key)
        if known is not None and known[0] is vm and known[1] is itype:
            return known[2]
        req = request_of(vm, refs)
        self._requests[vm.key] = (vm, itype, req)
        return req

    def of(self, desired: Desired) -> list[Manifest]:
        """`desired`'s manifests, each with its secrets digested (as read, for keys the
        tree already read digested). Remembers only `desired`'s keys."""
        kept: dict[ObjectKey, tuple[Manifest, Manifest]] = {}
        out: list[Manifest] = []
        for m in desired.manifests:
            if m.key in desired.digested:
                out.append(m)
                continue
            known = self._by_key.get(m.key)
            if known is None or known[0] is not m:
                raw = m.body if isinstance(m.body, dict) else dict(m.body)
                body = digest_sensitive_shared(raw)
                known = (m, m if body is m.body else replace(m, body=cast(dict[str, JSON], body)))
            kept[m.key] = known
            out.append(known[1])
        self._by_key = kept
        self._requests = {k: v for k, v in self._requests.items() if k in kept}
        return out
