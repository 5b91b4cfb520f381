"""`virtsync apply`: make the hosts match git, executing exactly the plan.

    virtsync apply PATH [--prune] [--allow-restart] [--allow-data-loss] [--force-stop]
                        [--auto-approve] [--plan FILE] [--max-prune N]

Exit codes: 0 applied (or nothing to do), 1 refused or an action failed, 2 error.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

from reconciler.backends.base import Backend
from reconciler.cli.common import (
    add_backend_arguments,
    add_change_permission_arguments,
    add_target_argument,
    apply_options,
    open_backend,
    progress_reporter,
    read_for_planning,
)
from reconciler.cli.summaries import SUMMARIES
from reconciler.core import collector
from reconciler.core.model import ApplyWord, ExitCode
from reconciler.core.statedir import state_dir
from reconciler.execute.apply import Outcome, describe_refusals, gate
from reconciler.execute.cycle import (
    DEFAULT_PRUNE_FRACTION,  # noqa: F401  (kept importable from here)
    Run,
    apply_changes,
    new_journal,
    plan_cycle,
    prune_refusal,
    record,
    settle,
)
from reconciler.execute.inventory import Inventory, source_id
from reconciler.execute.inventory_store import load_inventory
from reconciler.execute.journal import JournalEntry, unfinished
from reconciler.execute.lock import StateLock
from reconciler.planning.plan_model import Plan
from reconciler.planning.reconcile import Desired, load_desired

NAME = "apply"
# The summary line's words, in this order; unchanged objects are not reported.
SUMMARY_WORDS = tuple(w for w in ApplyWord if w not in (ApplyWord.UNCHANGED, ApplyWord.NOT_RUN))
HELP = SUMMARIES[NAME]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", default=".", metavar="PATH",
                   help="folder (or file) of YAML specs (default: .)")
    p.add_argument("--plan", metavar="FILE",
                   help="execute this saved plan (from `virtsync plan --out-file`) only if "
                        "re-planning now gives exactly the same plan; refused otherwise")
    add_change_permission_arguments(p, what_left="git")
    p.add_argument("--auto-approve", action="store_true",
                   help="do not ask for confirmation on a terminal")
    add_backend_arguments(p)
    add_target_argument(p)
    p.add_argument("--force-conflicts", action="store_true",
                   help="kubevirt: take over fields another field manager owns "
                        "(server-side apply's force); without it such a conflict fails "
                        "the object's step, naming the other manager")


def run(args: argparse.Namespace) -> ExitCode:
    # The bulk phase (reconciler.core.collector): it ends once the call's frame, with
    # the tree, the observation and the plan, is gone.
    with collector.paused():
        return _run(args)


def _run(args: argparse.Namespace) -> ExitCode:
    options = apply_options(args)
    state = state_dir()
    with StateLock(state), ExitStack() as opened:
        desired = read_for_planning(args.path, args.target)
        earlier = unfinished(state)
        for entry in earlier:
            print(f"virtsync: note: an earlier apply stopped during {entry.action} of "
                  f"{entry.key}; converging from live state", file=sys.stderr)
        backend = opened.enter_context(open_backend(desired, args))
        inventory = load_inventory(state, source_id(desired.root), backend)
        plan, observation = plan_cycle(desired, backend, inventory, prune=options.prune)
        if _needs_parsed_bodies(desired, plan, inventory, args):
            # Rule 10: bodies read with their secrets digested only ever decide that
            # there is nothing to do; whatever runs or is recorded is planned again from
            # the parsed files, so no digest is ever applied.
            desired = load_desired([args.path])
            plan, observation = plan_cycle(desired, backend, inventory, prune=options.prune)
        for note in observation.notes:
            print(f"virtsync: note: {note}", file=sys.stderr)
        if args.plan:
            from reconciler.planning.plan_codec import read_plan_document
            from reconciler.planning.savedplan import check_saved_plan

            # Rule 15: the file only pins the plan; what runs (and what the gates below
            # judge) is the plan re-derived here, executed only if the file equals it.
            check_saved_plan(read_plan_document(Path(args.plan)), plan,
                             inventory.entries.keys(), args.plan)

        capped = prune_refusal(plan, inventory, options.max_prune) if options.prune else None
        if capped:
            print(capped, file=sys.stderr)
            return ExitCode.FINDINGS
        refusals = gate(plan, desired.by_key, options)
        if refusals:
            print(describe_refusals(refusals), file=sys.stderr)
            return ExitCode.FINDINGS
        if plan.empty:
            record(state, inventory, desired, [], backend=backend)
            _settle(state, backend, earlier, [])
            print("No changes. Live state matches the specs.", file=sys.stderr)
            return ExitCode.OK
        if sys.stdin.isatty() and sys.stdout.isatty() and not args.auto_approve:
            if not _confirm(plan, args):
                print("Apply cancelled; nothing was changed.", file=sys.stderr)
                return ExitCode.FINDINGS

        with progress_reporter(len(plan.changes)) as report:
            outcomes, _ = apply_changes(Run(state, backend, new_journal(state), options, report),
                                        plan.changes, desired, desired.by_key, inventory)
        _settle(state, backend, earlier, outcomes)
    failed = [o for o in outcomes if o.failed]
    counts = {w: sum(1 for o in outcomes if o.word is w) for w in SUMMARY_WORDS}
    summary = ", ".join(f"{n} {w}" for w, n in counts.items() if n)
    print(f"Apply complete: {summary}.", file=sys.stderr)
    return ExitCode.FINDINGS if failed else ExitCode.OK


def _needs_parsed_bodies(desired: Desired, plan: Plan, inventory: Inventory,
                         args: argparse.Namespace) -> bool:
    """Anything to execute, a saved plan to check, or an object to adopt into the
    inventory, while some bodies were read digested."""
    return bool(desired.digested) and (
        not plan.empty or bool(args.plan)
        or any(m.key not in inventory.entries for m in desired.manifests))


def _settle(state: Path, backend: Backend, earlier: list[JournalEntry],
            outcomes: list[Outcome]) -> None:
    resolved, swept = settle(state, backend, earlier, outcomes)
    if resolved:
        print(f"virtsync: note: converged past {resolved} step(s) an earlier apply left "
              "unfinished", file=sys.stderr)
    for path in swept:
        print(f"virtsync: note: removed {path}, a temp file an interrupted apply left",
              file=sys.stderr)


def _confirm(plan: Plan, args: argparse.Namespace) -> bool:
    from reconciler.render.text import render_text, want_color

    sys.stdout.write(render_text(plan, color=want_color(args.color, True)))
    answer = input("\nApply these changes? Only 'yes' is accepted: ")
    return answer.strip() == "yes"
