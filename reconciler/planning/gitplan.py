"""Git-mode planning (`virtsync plan PATH --base REV`): what merging changes, from git alone.

The desired side is the work tree at PATH, fully validated (safety rule 1: a partly
failing source plans nothing). The live side is the same folder at REV. Files whose git
blob id is identical on both sides cannot differ, so only changed files are parsed for
the diff; everything else is counted as unchanged. Each version of a file is parsed at
most once per run: what validation parsed is reused, and a blob read on both sides (or
twice, for instancetype dependents) comes from one parse.

No output here: findings and warnings are returned for the caller to show.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.check.validate import ValidationReport, validate_paths
from reconciler.core.hostdisk import CLUSTER_KIND
from reconciler.core.model import Finding, Manifest, ObjectKey, VirtsyncError
from reconciler.planning.classify import ClassificationProfile
from reconciler.planning.plan import make_plan
from reconciler.planning.plan_model import Fingerprints, Observed, Plan, content_hash
from reconciler.planning.revisions import REFERENCED_KINDS, dependents, with_revisions
from reconciler.tree.gitsource import (
    GitListing,
    TreeEntry,
    blob_sha,
    clean_index_blobs,
    entry_map,
    list_tree,
    relative_to_root,
    repo_root,
)
from reconciler.tree.loader import SourceFile, read_source
from reconciler.tree.settled import PlainWalk
from reconciler.tree.source import FileVersions


@dataclass(frozen=True)
class GitPlan:
    plan: Plan
    findings: tuple[Finding, ...]  # the work tree's validation findings (none are errors)
    warnings: tuple[str, ...]  # problems of the base revision, which may be broken


class InvalidWorkTree(VirtsyncError):
    """The work tree failed validation: nothing is planned. `details` has the findings."""

    def __init__(self, message: str, findings: Sequence[Finding]) -> None:
        super().__init__(message)
        self.details = "".join(f.as_text() + "\n" for f in findings)


@dataclass(frozen=True)
class _HeadFile:
    display: str
    repo_path: str
    absolute: str
    blob: str

    def read(self) -> bytes:
        return read_source(SourceFile(self.display, self.absolute))


def _head(parses: FileVersions, files: Iterable[_HeadFile]) -> list[Manifest]:
    return [m for f in files for m in parses.manifests(f.display, f.blob, f.read)]


# Chooses the rules from the work tree's Cluster objects (its backend and settings).
ProfileChooser = Callable[[Sequence[Manifest]], ClassificationProfile]


def plan_from_git(path: str, base: str | None, *,
                  profile: ClassificationProfile | ProfileChooser,
                  use_cache: bool = True, walked: PlainWalk | None = None) -> GitPlan:
    """The plan from the work tree at `path` against `path` at git revision `base`,
    classified by `profile` (or the one chosen from the work tree's Cluster objects).
    `walked`: the plain walk of `path` the caller made already (tree/settled.py).
    Raises InvalidWorkTree when the work tree is invalid."""
    if base is None:
        raise VirtsyncError("git mode needs a base revision (--base REV); without it, "
                            "`virtsync plan` compares with the live VMs (host mode)")
    report = validate_paths([path], use_cache=use_cache, keep_parsed=True, walked=walked)
    if not report.valid:
        raise InvalidWorkTree(f"{len(report.errors)} validation error"
                              f"{'s' if len(report.errors) != 1 else ''} in {path}; "
                              "nothing planned", report.findings)

    root = repo_root(path)
    sub = relative_to_root(root, path)
    base_tree = list_tree(root, base, sub)
    base_map = entry_map(base_tree)
    head = _head_files(report, root, sub)
    parses = FileVersions()
    for f in head:
        if f.display in report.parsed:
            parses.seed(f.display, f.blob, report.parsed[f.display])
    if not isinstance(profile, ClassificationProfile):
        profile = profile(_cluster_objects(report, parses, head))

    changed = [f for f in head if base_map.get(f.repo_path) != f.blob]
    head_blobs = {(f.repo_path, f.blob) for f in head}
    base_changed = [e for e in base_tree.entries if (e.path, e.sha) not in head_blobs]
    changed_paths = {f.display for f in changed}
    unchanged_keys = frozenset(key for ref, key in report.objects
                               if ref.file not in changed_paths)

    desired = _head(parses, changed)
    live = [Observed(m) for m in parses.at_revision(root, base_changed) if m.key not in unchanged_keys]
    if profile.vms_follow_references:
        desired, live, unchanged_keys = _instancetype_dependents(
            parses, root, head, base_tree.entries, desired, live, unchanged_keys)

    head_state = content_hash((f.repo_path, f.blob) for f in head)
    plan = make_plan(desired, live, fingerprints=_fingerprints(root, sub, base, base_tree,
                                                               head_state),
                     profile=profile, unchanged=len(unchanged_keys))
    return GitPlan(plan, report.findings, tuple(parses.warnings))


def _fingerprints(root: Path, sub: str, base: str, base_tree: GitListing,
                  head_state: str) -> Fingerprints:
    head_commit = _head_matches(root, sub, head_state)
    return Fingerprints(
        desired_commit=head_commit[0] if head_commit else None,
        desired_tree=head_commit[1] if head_commit else None,
        desired_hash=head_state,
        live_source=f"git:{base}@{base_tree.commit}",
        live_hash=content_hash((e.path, e.sha) for e in base_tree.entries),
    )


def _cluster_objects(report: ValidationReport, parses: FileVersions,
                     head: Sequence[_HeadFile]) -> list[Manifest]:
    """The work tree's Cluster objects, parsing only the files that hold one."""
    files = {ref.file for ref, key in report.objects if key.kind == CLUSTER_KIND}
    return [m for m in _head(parses, (f for f in head if f.display in files))
            if m.kind == CLUSTER_KIND]


def _head_files(report: ValidationReport, root: Path, sub: str) -> list[_HeadFile]:
    """Every validated file with its git blob id: from git's index when git sees the
    file unmodified, else by reading and hashing it."""
    # Plain string paths: pathlib costs more than the rest of this function.
    cwd = os.getcwd()
    top = str(root.resolve()) + os.sep
    known = clean_index_blobs(root, sub)
    out: list[_HeadFile] = []
    folders: dict[str, str] = {}  # display folder → its absolute path: normalised once
    for display in report.files:
        folder, _, name = display.rpartition("/")
        real_folder = folders.get(folder)
        if real_folder is None:
            real_folder = folders[folder] = os.path.normpath(os.path.join(cwd, folder))
        absolute = os.path.join(real_folder, name)
        if not absolute.startswith(top):
            raise VirtsyncError(f"{display}: outside the git work tree {root}")
        repo_path = absolute[len(top):].replace(os.sep, "/")
        blob = known.get(repo_path)
        # A link is hashed as its target's content (git's index has the link's own blob).
        if blob is None or (display not in report.regular and os.path.islink(absolute)):
            blob = blob_sha(read_source(SourceFile(display, absolute)))
        out.append(_HeadFile(display, repo_path, absolute, blob))
    return out


def _instancetype_dependents(
    parses: FileVersions, root: Path, head: Sequence[_HeadFile],
    base_entries: Sequence[TreeEntry],
    desired: list[Manifest], live: list[Observed], unchanged: frozenset[ObjectKey],
) -> tuple[list[Manifest], list[Observed], frozenset[ObjectKey]]:
    """On libvirt, VMs follow their instancetype/preference (apply pins a content-hash
    revisionName): when one of those changed, the VMs using it change too, although
    their files did not. Only then is the whole tree read on both sides."""
    changed_refs = ({m.key for m in desired if m.kind in REFERENCED_KINDS}
                    | {o.key for o in live if o.key.kind in REFERENCED_KINDS})
    if not changed_refs:
        return desired, live, unchanged
    head_index: Mapping[ObjectKey, Manifest] = {m.key: m for m in _head(parses, head)}
    base_index: Mapping[ObjectKey, Manifest] = {m.key: m
                                                for m in parses.at_revision(root, base_entries)}
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
