"""`virtsync status`: what runs where, as KubeVirt would print it."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from reconciler.backends.base import LiveObject, Observation
from reconciler.cli.common import add_scope_argument, add_target_argument, open_backend
from reconciler.cli.summaries import SUMMARIES
from reconciler.core.migration import CONDITION_TYPE
from reconciler.core.model import ExitCode, Manifest, ObjectKey
from reconciler.core.statedir import state_dir
from reconciler.core.status import Condition
from reconciler.execute.cordons import observe
from reconciler.execute.inventory import source_id
from reconciler.execute.inventory_store import load_inventory
from reconciler.planning.moves import migration_targets, move_context
from reconciler.planning.reconcile import RUNNING_STATES, load_desired, plan_live

NAME = "status"
HELP = SUMMARIES[NAME]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", default=".", metavar="PATH",
                   help="the specs' folder: its Cluster object names the nodes, and drift "
                        "is measured against it (default: .)")
    p.add_argument("--output", "-o", choices=["table", "json"], default="table")
    add_scope_argument(p, "list")
    add_target_argument(p)


def _age(created: float | None, now: float) -> str:
    if not created:
        return "<unknown>"
    s = int(max(now - created, 0))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def run(args: argparse.Namespace) -> ExitCode:
    desired = load_desired([args.path])
    with open_backend(desired, args, every_installation=args.all_installations) as backend:
        observation = observe(backend)
        profile = backend.profile.classification
        inventory = load_inventory(state_dir(), source_id(desired.root), backend)
    plan = plan_live(desired, observation, inventory, prune=False, profile=profile)
    drifted = {c.key for c in plan.changes}
    rows = sorted((o for o in observation.objects if o.key.kind == "VirtualMachine"),
                  key=lambda o: o.key)  # a backend may observe DataVolumes etc. too
    now = time.time()
    if args.output == "json":
        extra = _migratable(desired.manifests, rows, observation,
                            live=profile.live_migration)
        print(json.dumps([_row_json(o, o.key in drifted, extra.get(o.key, ()))
                          for o in rows], indent=2))
        return ExitCode.OK
    header = ("NAMESPACE", "NAME", "NODE", "STATUS", "READY", "AGE", "REVISION", "DRIFT")
    table = [header] + [
        (o.key.namespace, o.key.name, o.node or "<none>", o.status.printable_status,
         str(o.status.ready).lower(), _age(o.status.created_at, now),
         (o.revision or "<none>")[:12], "yes" if o.key in drifted else "no")
        for o in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        print("   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    cordoned = [n.name for n in observation.nodes if not n.schedulable]
    if cordoned:  # kubectl get nodes says Ready,SchedulingDisabled
        print(f"cordoned (SchedulingDisabled): {', '.join(cordoned)}")
    missing = [k for k in desired.by_key if k.kind == "VirtualMachine"
               and k not in {o.key for o in rows}]
    if missing:
        print(f"{len(missing)} VM(s) in git not created yet: run `virtsync apply`",
              file=sys.stderr)
    return ExitCode.OK


def _migratable(desired: Sequence[Manifest], rows: Sequence[LiveObject],
                observation: Observation, *, live: bool) -> dict[ObjectKey, tuple[Condition, ...]]:
    """KubeVirt's LiveMigratable condition for each running VM, computed from git and the
    nodes (issue 10; docs/migration.md). A backend without nodes has none."""
    if not observation.nodes:
        return {}
    ctx = move_context(desired, observation.nodes, live=live)
    wanted = {m.key: m for m in desired}
    out: dict[ObjectKey, tuple[Condition, ...]] = {}
    for o in rows:
        vm = wanted.get(o.key)
        if vm is None or not o.node or o.status.printable_status not in RUNNING_STATES:
            continue
        targets, verdict = migration_targets(vm, o.node, ctx)
        message = (f"{verdict.describe()}; targets: {', '.join(targets)}" if targets
                   else "; ".join(b.message for b in verdict.blockers))
        out[o.key] = (Condition(CONDITION_TYPE, bool(targets), verdict.reason, message),)
    return out


def _row_json(o: LiveObject, drift: bool,
              extra: Sequence[Condition] = ()) -> dict[str, object]:
    return {
        "namespace": o.key.namespace, "name": o.key.name, "node": o.node,
        "printableStatus": o.status.printable_status, "ready": o.status.ready,
        "createdAt": o.status.created_at, "revision": o.revision, "drift": drift,
        "conditions": [{"type": c.type, "status": c.status, "reason": c.reason,
                        "message": c.message} for c in (*o.status.conditions, *extra)],
    }
