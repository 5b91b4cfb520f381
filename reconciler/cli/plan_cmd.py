"""`virtsync plan PATH [--base REV]`: what a change does, per VM.

Git mode (`--base`, planned by `reconciler.planning.gitplan`) compares the work tree with PATH at
REV, from git alone; host mode compares it with what the backend observes. This module
parses arguments, calls the planner, renders and picks the exit code.

Exit codes (kubectl's convention): 0 no changes, 1 changes, 2 error. With
--detailed-exitcode (Terraform's): 0 no changes, 2 changes, 1 error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.backends import registry
from reconciler.cli.summaries import SUMMARIES
from reconciler.core.errors import ExitCode, VirtsyncError

if TYPE_CHECKING:
    from reconciler.planning.plan_model import Plan
    from reconciler.planning.settledplan import Probe

# The plan model is imported when a plan is made or decoded: a plan printed as stored
# (reconciler/planning/settledplan.py) needs neither (issue 13).

NAME = "plan"
HELP = SUMMARIES[NAME]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", default=".", metavar="PATH",
                   help="folder (or file) of YAML specs in a git work tree (default: .)")
    p.add_argument("--base", metavar="REV",
                   help="compare with PATH at this git revision (pull-request mode; no host "
                        "needed), e.g. origin/main. Without it, compare with the live VMs "
                        "on the Cluster's nodes")
    p.add_argument("--output", "-o", choices=["text", "markdown", "json"], default="text")
    p.add_argument("--out-file", metavar="F",
                   help="also save the plan (JSON, with fingerprints) for a later apply")
    p.add_argument("--detailed-exitcode", action="store_true",
                   help="Terraform's exit codes: 0 no changes, 2 changes, 1 error")
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="colour the text output (auto: on a terminal, unless NO_COLOR)")
    p.add_argument("--target", "--backend", dest="target", choices=registry.names(),
                   help="classify by this backend's rules, e.g. kubevirt's live-update "
                        "rules; with one Cluster object per target in the tree, use that "
                        "one (default: the Cluster object's spec.backend, "
                        f"else {registry.DEFAULT})")
    p.add_argument("--prune", action="store_true",
                   help="host mode: also list objects virtsync applied that left git as "
                        "deletions to be pruned")
    p.add_argument("--no-cache", action="store_true",
                   help="validate without the content-hash cache")


def preload(args: argparse.Namespace) -> None:
    """What plan_from_host imports (its backend's module aside: the tree names it), here
    during start-up while the collector is off (reconciler.cli.process_main); a git-mode
    plan never pays for it. Import statements, not names: the wheel rewrites only those."""
    if args.base is None:
        from reconciler.cli import common  # noqa: F401
        from reconciler.execute import cordons, inventory_store, planmemo  # noqa: F401
        from reconciler.render import text  # noqa: F401


def run(args: argparse.Namespace) -> ExitCode:
    probe = None
    if args.base is not None and not args.no_cache:
        from reconciler.planning import settledplan

        # An unchanged tree against unchanged commits: the plan a run stored (issue 13),
        # printed as stored when this run would only print it.
        probe = settledplan.probe(args.path, args.base, args.target)
        printed = settledplan.stored_output(probe, args.output) \
            if probe is not None and _only_printed(args) else None
        if printed is not None:
            sys.stdout.write(printed[0])
            return _exit_code(printed[1], args.detailed_exitcode)
    storable = False
    try:
        if args.base is None:
            plan = plan_from_host(args.path, prune=args.prune, target=args.target,
                                  use_cache=not args.no_cache)
        else:
            plan, storable = _git_mode(args, probe)
    except VirtsyncError as exc:
        if not args.detailed_exitcode:
            raise
        sys.stderr.write(exc.details)
        print(f"virtsync: error: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    if args.out_file:
        from reconciler.planning.plan_codec import save_plan

        save_plan(plan, Path(args.out_file))
    shown = render(plan, args.output, args.color)
    sys.stdout.write(shown)
    _github_step_summary(plan)
    if storable and probe is not None:
        from reconciler.planning import settledplan

        # The plan, and this rendering for a later run that only prints it.
        settledplan.remember(probe, plan, {} if _colored(args) else {args.output: shown})
    return _exit_code(plan.empty, args.detailed_exitcode)


def _exit_code(empty: bool, detailed: bool) -> ExitCode:
    if empty:
        return ExitCode.OK
    return ExitCode.CHANGES if detailed else ExitCode.FINDINGS


def _colored(args: argparse.Namespace) -> bool:
    from reconciler.render.color import want_color

    return args.output == "text" and want_color(args.color, sys.stdout.isatty())


def _only_printed(args: argparse.Namespace) -> bool:
    """Does this run only print the plan, in a rendering a stored plan keeps (none
    coloured)?"""
    return not args.out_file and not _step_summary_file() and not _colored(args)


def _git_mode(args: argparse.Namespace, probe: Probe | None) -> tuple[Plan, bool]:
    """The plan, and whether it may be stored (made in full by a run that printed
    nothing else)."""
    from reconciler.planning import settledplan

    known = settledplan.stored(probe) if probe is not None else None
    if known is not None:
        return known, False
    from reconciler.planning.gitplan import plan_from_git  # host mode never needs it

    result = plan_from_git(args.path, args.base,
                           profile=lambda clusters: registry.for_tree(
                               clusters, args.target).classification,
                           use_cache=not args.no_cache,
                           walked=probe.walked if probe is not None else None)
    for f in result.findings:
        print(f.as_text(), file=sys.stderr)
    for warning in result.warnings:
        print(f"virtsync: warning: {warning}", file=sys.stderr)
    return result.plan, probe is not None and not result.findings and not result.warnings


def render(plan: Plan, output: str, color: str) -> str:
    if output == "json":
        from reconciler.render.json import render_json

        return render_json(plan)
    if output == "markdown":
        from reconciler.render.markdown import render_markdown

        return render_markdown(plan)
    from reconciler.render.color import want_color
    from reconciler.render.text import render_text

    return render_text(plan, color=want_color(color, sys.stdout.isatty()))


def _step_summary_file() -> str | None:
    """Where GitHub Actions wants the markdown plan too (None: not under Actions)."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    return target if os.environ.get("GITHUB_ACTIONS") == "true" and target else None


def _github_step_summary(plan: Plan) -> None:
    target = _step_summary_file()
    if target is None:
        return
    from reconciler.render.markdown import render_markdown

    try:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(render_markdown(plan))
    except OSError as exc:
        print(f"virtsync: warning: cannot write GITHUB_STEP_SUMMARY: {exc.strerror}",
              file=sys.stderr)


def plan_from_host(path: str, *, prune: bool, target: str | None = None,
                   use_cache: bool = True) -> Plan:
    """Host mode: desired is the tree at PATH, live is what the tree's backend observes
    (libvirt: on the Cluster's nodes); the same plan `virtsync apply` would execute."""
    from reconciler.core import collector

    # The bulk phase (reconciler.core.collector): it ends once the call's frame, with
    # the tree and the observation, is gone.
    with collector.paused():
        return _plan_from_host(path, prune=prune, target=target, use_cache=use_cache)


def _plan_from_host(path: str, *, prune: bool, target: str | None,
                    use_cache: bool) -> Plan:
    from reconciler.cli.common import open_backend, read_for_planning
    from reconciler.core.statedir import state_dir
    from reconciler.execute.cordons import observe
    from reconciler.execute.inventory import source_id
    from reconciler.execute.inventory_store import load_inventory
    from reconciler.execute.planmemo import plan_whole
    from reconciler.planning.reconcile import plan_live

    # A plan is never applied from these bodies: secrets may stay digested (rule 10).
    # --no-cache: every file checked and parsed, every VM planned in full.
    desired = read_for_planning(path, target, use_cache=use_cache)
    with open_backend(desired, argparse.Namespace(target=target)) as backend:
        inventory = load_inventory(state_dir(), source_id(desired.root), backend)
        observation = observe(backend)
        for note in observation.notes:
            print(f"virtsync: note: {note}", file=sys.stderr)
        plan = plan_whole if use_cache else plan_live
        return plan(desired, observation, inventory, prune=prune,
                    profile=backend.profile.classification)
