"""`virtsync plan PATH --base REV`: what merging changes, per VM, from git alone.

The desired side is the work tree at PATH, fully validated (safety rule 1: a partly
failing source plans nothing). The live side is the same folder at REV. Files whose git
blob id is identical on both sides cannot differ, so only changed files are parsed for
the diff; everything else is counted as unchanged.

Exit codes (kubectl's convention): 0 no changes, 1 changes, 2 error. With
--detailed-exitcode (Terraform's): 0 no changes, 2 changes, 1 error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.backends import registry
from reconciler.backends.base import BackendProfile
from reconciler.gitsource import (
    TreeEntry,
    blob_sha,
    clean_index_blobs,
    display_path,
    entry_map,
    list_tree,
    read_blobs,
    relative_to_root,
    repo_root,
)
from reconciler.loader import SourceFile, load_bytes, read_source
from reconciler.model import KNOWN_KINDS, ExitCode, Finding, Manifest, ObjectKey, VirtsyncError
from reconciler.plan import make_plan
from reconciler.plan_codec import save_plan
from reconciler.plan_model import Fingerprints, Observed, Plan, content_hash
from reconciler.revisions import REFERENCED_KINDS, dependents, with_revisions
from reconciler.validate import ValidationReport, validate_paths

NAME = "plan"
HELP = "Show what a change does to every VM (none, live, restart, replace, data-loss)."


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
    p.add_argument("--backend", choices=registry.names(), default=registry.DEFAULT,
                   help="git mode: which backend's disruption rules apply "
                        f"(default: {registry.DEFAULT})")
    p.add_argument("--prune", action="store_true",
                   help="host mode: also list objects virtsync applied that left git as "
                        "deletions to be pruned")
    p.add_argument("--no-cache", action="store_true",
                   help="validate without the content-hash cache")


def run(args: argparse.Namespace) -> int:
    try:
        if args.base is None:
            plan = plan_from_host(args.path, prune=args.prune)
        else:
            plan = plan_from_git(args.path, args.base, backend=registry.profile(args.backend),
                                 use_cache=not args.no_cache)
    except VirtsyncError as exc:
        if not args.detailed_exitcode:
            raise
        print(f"virtsync: error: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    if args.out_file:
        save_plan(plan, Path(args.out_file))
    sys.stdout.write(render(plan, args.output, args.color))
    _github_step_summary(plan)
    if plan.empty:
        return ExitCode.OK
    return ExitCode.CHANGES if args.detailed_exitcode else ExitCode.ERROR


def render(plan: Plan, output: str, color: str) -> str:
    if output == "json":
        from reconciler.render.json import render_json

        return render_json(plan)
    if output == "markdown":
        from reconciler.render.markdown import render_markdown

        return render_markdown(plan)
    from reconciler.render.text import render_text, want_color

    return render_text(plan, color=want_color(color, sys.stdout.isatty()))


def _github_step_summary(plan: Plan) -> None:
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if os.environ.get("GITHUB_ACTIONS") != "true" or not target:
        return
    from reconciler.render.markdown import render_markdown

    try:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(render_markdown(plan))
    except OSError as exc:
        print(f"virtsync: warning: cannot write GITHUB_STEP_SUMMARY: {exc.strerror}",
              file=sys.stderr)


@dataclass(frozen=True)
class _HeadFile:
    display: str
    repo_path: str
    absolute: str
    blob: str

    def read(self) -> bytes:
        return read_source(SourceFile(self.display, Path(self.absolute)))


def plan_from_host(path: str, *, prune: bool) -> Plan:
    """Host mode: desired is the tree at PATH, live is what the tree's backend observes
    (libvirt: on the Cluster's nodes); the same plan `virtsync apply` would execute."""
    from reconciler.cli.common import open_backend
    from reconciler.inventory import Inventory, source_id
    from reconciler.reconcile import load_desired, observe, plan_live
    from reconciler.statedir import state_dir

    desired = load_desired([path])
    inventory = Inventory.load(state_dir(), source_id(desired.root))
    with open_backend(desired, None) as backend:
        return plan_live(desired, observe(backend), inventory, prune=prune,
                         profile=backend.profile.classification)


def plan_from_git(path: str, base: str | None, *, backend: BackendProfile,
                  use_cache: bool = True) -> Plan:
    if base is None:
        raise VirtsyncError("git mode needs a base revision (--base REV); without it, "
                            "`virtsync plan` compares with the live VMs (host mode)")
    report = validate_paths([path], use_cache=use_cache)
    _report_findings(report.findings)
    if not report.valid:
        raise VirtsyncError(f"{len(report.errors)} validation error"
                            f"{'s' if len(report.errors) != 1 else ''} in {path}; "
                            "nothing planned")

    root = repo_root(path)
    sub = relative_to_root(root, path)
    base_tree = list_tree(root, base, sub)
    base_map = entry_map(base_tree)
    head = _head_files(report, root, sub)

    changed = [f for f in head if base_map.get(f.repo_path) != f.blob]
    head_blobs = {(f.repo_path, f.blob) for f in head}
    base_changed = [e for e in base_tree.entries if (e.path, e.sha) not in head_blobs]
    changed_paths = {f.display for f in changed}
    unchanged_keys = frozenset(key for ref, key in report.objects
                               if ref.file not in changed_paths)

    desired = [m for f in changed for m in load_bytes(f.read(), f.display).manifests
               if _known(m)]
    live = _base_objects(root, base_changed, unchanged_keys)
    if backend.classification.vms_follow_references:
        desired, live, unchanged_keys = _instancetype_dependents(
            root, head, base_tree.entries, desired, live, unchanged_keys)

    head_state = content_hash((f.repo_path, f.blob) for f in head)
    head_commit = _head_matches(root, sub, head_state)
    fingerprints = Fingerprints(
        desired_commit=head_commit[0] if head_commit else None,
        desired_tree=head_commit[1] if head_commit else None,
        desired_hash=head_state,
        live_source=f"git:{base}@{base_tree.commit}",
        live_hash=content_hash((e.path, e.sha) for e in base_tree.entries),
    )
    return make_plan(desired, live, fingerprints=fingerprints,
                     profile=backend.classification,
                     unchanged=len(unchanged_keys))


def _known(m: Manifest) -> bool:
    return m.kind in KNOWN_KINDS.get(m.group, frozenset())


def _head_files(report: ValidationReport, root: Path, sub: str) -> list[_HeadFile]:
    """Every validated file with its git blob id: from git's index when git sees the
    file unmodified, else by reading and hashing it."""
    # Plain string paths: pathlib costs more than the rest of this function.
    cwd = os.getcwd()
    top = str(root.resolve()) + os.sep
    known = clean_index_blobs(root, sub)
    out: list[_HeadFile] = []
    for display in report.files:
        absolute = os.path.normpath(os.path.join(cwd, display))
        if not absolute.startswith(top):
            raise VirtsyncError(f"{display}: outside the git work tree {root}")
        repo_path = absolute[len(top):].replace(os.sep, "/")
        blob = known.get(repo_path)
        if blob is None or os.path.islink(absolute):
            blob = blob_sha(read_source(SourceFile(display, Path(absolute))))
        out.append(_HeadFile(display, repo_path, absolute, blob))
    return out


def _base_objects(root: Path, entries: Sequence[TreeEntry],
                  skip: frozenset[ObjectKey]) -> list[Observed]:
    blobs = read_blobs(root, (e.sha for e in entries))
    out: list[Observed] = []
    for e in entries:
        loaded = load_bytes(blobs[e.sha], display_path(root, e.path))
        errors = [f for f in loaded.findings if f.severity == "error"]
        if errors:
            # The base may be broken (a pull request can fix it): its objects in this file
            # are unknown, so they show as created. Say so instead of failing.
            first = errors[0]
            print(f"virtsync: warning: base revision: {first.file}:{first.line}: "
                  f"{first.message}", file=sys.stderr)
        out.extend(Observed(m) for m in loaded.manifests if _known(m) and m.key not in skip)
    return out


def _instancetype_dependents(
    root: Path, head: Sequence[_HeadFile], base_entries: Sequence[TreeEntry],
    desired: list[Manifest], live: list[Observed], unchanged: frozenset[ObjectKey],
) -> tuple[list[Manifest], list[Observed], frozenset[ObjectKey]]:
    """On libvirt, VMs follow their instancetype/preference (apply pins a content-hash
    revisionName): when one of those changed, the VMs using it change too, although
    their files did not. Only then is the whole tree read on both sides."""
    changed_refs = ({m.key for m in desired if m.kind in REFERENCED_KINDS}
                    | {o.key for o in live if o.key.kind in REFERENCED_KINDS})
    if not changed_refs:
        return desired, live, unchanged
    head_index = {m.key: m for f in head for m in load_bytes(f.read(), f.display).manifests
                  if _known(m)}
    blobs = read_blobs(root, (e.sha for e in base_entries))
    base_index = {m.key: m for e in base_entries
                  for m in load_bytes(blobs[e.sha], display_path(root, e.path)).manifests
                  if _known(m)}
    affected = dependents(changed_refs, head_index) | dependents(changed_refs, base_index)
    have_desired = {m.key for m in desired}
    have_live = {o.key for o in live}
    desired = desired + [head_index[k] for k in sorted(affected)
                         if k in head_index and k not in have_desired]
    live = live + [Observed(base_index[k]) for k in sorted(affected)
                   if k in base_index and k not in have_live]
    desired = list(with_revisions(desired, head_index))
    live = [Observed(m) for m in with_revisions([o.manifest for o in live], base_index)]
    return desired, live, unchanged - affected


def _head_matches(root: Path, sub: str, head_state: str) -> tuple[str, str] | None:
    """(commit, tree) of HEAD when the work tree under PATH is exactly HEAD's content."""
    try:
        tree = list_tree(root, "HEAD", sub)
    except VirtsyncError:
        return None
    if content_hash((e.path, e.sha) for e in tree.entries) != head_state:
        return None
    return (tree.commit, tree.tree or "")


def _report_findings(findings: Sequence[Finding]) -> None:
    for f in findings:
        print(f.as_text(), file=sys.stderr)
