"""`virtsync drain NODE [--path P] [--dry-run] [--allow-restart]` and
`virtsync uncordon NODE`: cordon a node in this state directory (like `kubectl cordon`;
git's `schedulable: false` cordons too) and move its VMs off by their eviction strategy.

Like `kubectl drain`, every VM is checked first: when one blocks (LiveMigrate and not
live-migratable, no node can take it, or it would be shut down without
`--allow-restart`), nothing is evicted, the node stays cordoned, and the command names
the blocking VMs and exits 1. Otherwise each VM's planned move off the node runs (a live
migration, or a graceful shutdown and a start on the new node); other changes in git
and other nodes' VMs are left to `virtsync apply`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import replace

from reconciler.cli.common import open_backend, progress_reporter
from reconciler.cli.summaries import SUMMARIES
from reconciler.core.model import ExitCode, Manifest, ObjectKey, VirtsyncError
from reconciler.core.statedir import state_dir
from reconciler.execute.apply import ApplyOptions, gate
from reconciler.execute.cordons import load_cordons, observe, save_cordons, with_cordons
from reconciler.execute.cycle import Run, apply_changes, new_journal
from reconciler.execute.inventory import Inventory, source_id
from reconciler.execute.lock import StateLock
from reconciler.planning.drainplan import DrainItem, Eviction, drain_items
from reconciler.planning.moves import move_context
from reconciler.planning.plan_model import Plan
from reconciler.planning.reconcile import load_desired, plan_live

NAME = "drain"  # also registered as "uncordon"; args.command tells which
HELP = SUMMARIES[NAME]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("node", metavar="NODE", help="the node's name in the Cluster object")
    p.add_argument("--path", default=".", metavar="PATH",
                   help="the specs' folder (its Cluster object names the nodes)")
    p.add_argument("--dry-run", action="store_true",
                   help="drain: say what would happen; cordon nothing, move nothing")
    p.add_argument("--allow-restart", action="store_true",
                   help="drain: permit shutting down VMs that cannot live-migrate "
                        "(evictionStrategy None or LiveMigrateIfPossible)")
    p.add_argument("--grace-period", type=int, metavar="S",
                   help="seconds to wait for a graceful shutdown (default: the VM's "
                        "terminationGracePeriodSeconds)")


def run(args: argparse.Namespace) -> ExitCode:
    state = state_dir()
    if args.command == "uncordon":
        with StateLock(state):
            cordons = load_cordons(state)
            save_cordons(state, cordons - {args.node})
        print(f"node/{args.node} uncordoned" if args.node in cordons
              else f"node/{args.node} was not cordoned here (git's `schedulable: false` "
                   "still cordons it)")
        return ExitCode.OK
    with StateLock(state), ExitStack() as opened:
        desired = load_desired([args.path])
        backend = opened.enter_context(open_backend(desired, args))
        observation = observe(backend)
        if args.node not in {n.name for n in observation.nodes}:
            raise VirtsyncError(f"no node named {args.node!r} in the Cluster object")
        if not args.dry_run:
            save_cordons(state, load_cordons(state) | {args.node})
            print(f"node/{args.node} cordoned")
        observation = with_cordons(observation, frozenset({args.node}))
        profile = backend.profile.classification
        inventory = Inventory.load(state, source_id(desired.root))
        plan = plan_live(desired, observation, inventory, prune=False, profile=profile)
        ctx = move_context(desired.manifests, observation.nodes, live=profile.live_migration)
        items = drain_items(plan, observation.objects, desired.by_key, args.node, ctx)
        options = ApplyOptions(allow_restart=args.allow_restart, grace_period=args.grace_period)
        items = _refused(items, plan, desired.by_key, options)
        for item in items:
            print(f"{item.key} {item.eviction}: {item.detail}")
        blocked = [i for i in items if i.blocks]
        if blocked:
            print(f"error: cannot drain node/{args.node}: {len(blocked)} VM(s) block it "
                  f"({', '.join(str(i.key) for i in blocked)}); nothing was evicted",
                  file=sys.stderr)
            return ExitCode.FINDINGS
        changes = [i.change for i in items if i.change is not None]
        left = sum(1 for i in items if i.eviction is Eviction.LEFT)
        done = f"drained{f' ({left} VM(s) left for an external controller)' if left else ''}"
        if args.dry_run or not changes:
            print(f"node/{args.node} {'would be ' if args.dry_run else ''}{done}")
            return ExitCode.OK
        with progress_reporter(len(changes)) as report:
            outcomes, _ = apply_changes(Run(state, backend, new_journal(state), options,
                                            report), changes, desired, desired.by_key,
                                        inventory)
    failed = [o for o in outcomes if o.failed]
    if failed:
        print(f"error: node/{args.node}: {len(failed)} eviction(s) failed", file=sys.stderr)
        return ExitCode.FINDINGS
    print(f"node/{args.node} {done}")
    return ExitCode.OK


def _refused(items: list[DrainItem], plan: Plan, desired: Mapping[ObjectKey, Manifest],
             options: ApplyOptions) -> list[DrainItem]:
    """The items, a shutdown the flags (or the VM's disruption annotation) do not permit
    turned into a blocker: like apply, a drain restarts a guest only on explicit opt-in."""
    moves = tuple(i.change for i in items if i.change is not None)
    refused = {r.key: r for r in gate(replace(plan, changes=moves), desired, options)}
    return [replace(i, eviction=Eviction.BLOCKED, change=None,
                    detail=f"would be shut down, needs {refused[i.key].needs}: {i.detail}")
            if i.key in refused else i for i in items]
