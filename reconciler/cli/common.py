"""Pieces several subcommands share: backend construction, progress, error printing."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from node.identity.metadata import Scope
from reconciler.backends import registry
from reconciler.backends.base import Backend, ServerSideApplier
from reconciler.core.model import ApplyWord, Manifest, VirtsyncError
from reconciler.core.statedir import installation_id, state_dir
from reconciler.tree.desired import Desired

if TYPE_CHECKING:  # imported where used: not every command applies
    from reconciler.execute.apply import ApplyOptions, Outcome


def add_target_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", "--backend", dest="target", choices=registry.names(),
                   help="the backend to use, and the tree's Cluster object for it when the "
                        "tree holds one per target (default: the Cluster object's "
                        f"spec.backend, else {registry.DEFAULT})")


def add_backend_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="colour terminal output (auto: on a terminal, unless NO_COLOR)")


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: want a count, 0 or more")
    return value


def add_change_permission_arguments(p: argparse.ArgumentParser, *, what_left: str) -> None:
    """The flags apply and watch share: prune, its cap, and the disruption permissions."""
    p.add_argument("--prune", action="store_true",
                   help=f"delete objects virtsync applied earlier that left {what_left}")
    p.add_argument("--max-prune", type=_count, metavar="N",
                   help="refuse to prune more than N objects at once; 0 allows none "
                        "(default: 20%% of the inventory, at least 1)")
    p.add_argument("--allow-restart", action="store_true",
                   help="permit changes that restart or replace a guest")
    p.add_argument("--allow-data-loss", action="store_true",
                   help="permit changes that destroy guest data")
    p.add_argument("--force-stop", action="store_true",
                   help="power off guests that do not shut down within their grace period "
                        "(may corrupt data)")
    p.add_argument("--grace-period", type=int, metavar="S",
                   help="seconds to wait for a graceful shutdown (default: the VM's "
                        "terminationGracePeriodSeconds)")


def apply_options(args: argparse.Namespace) -> ApplyOptions:
    """The flags `add_change_permission_arguments` added, as `apply` and `watch` take them."""
    from reconciler.execute.apply import ApplyOptions

    return ApplyOptions(allow_restart=args.allow_restart, allow_data_loss=args.allow_data_loss,
                        force_stop=args.force_stop, prune=args.prune,
                        max_prune=args.max_prune, grace_period=args.grace_period)


def add_scope_argument(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--all-installations", action="store_true",
                   help=f"{what} every virtsync VM on the nodes, also those other "
                        "installations (state directories) manage")


def installation_scope() -> Scope:
    """Rule 18: what this installation (its state directory) manages: domains marked
    with its id, and id-less ones from the first release that its inventory lists."""
    from reconciler.execute.inventory import managed_keys

    state = state_dir()
    return Scope(installation_id(state), managed_keys(state))


def make_backend(desired: Desired | Sequence[Manifest],
                 args: argparse.Namespace | None, *,
                 every_installation: bool = False) -> Backend:
    """The backend the tree's Cluster object selects (see `reconciler.backends.registry`),
    scoped to this installation (`every_installation` widens it: for status and the
    agent, never for changes)."""
    manifests = desired.manifests if isinstance(desired, Desired) else desired
    scope = installation_scope()
    backend = registry.open_backend(manifests, scope.widened() if every_installation else scope,
                                    getattr(args, "target", None))
    if getattr(args, "force_conflicts", False):
        if not isinstance(backend, ServerSideApplier):
            backend.close()
            raise VirtsyncError(f"--force-conflicts: the {backend.profile.name} backend has "
                                "no field managers (only kubevirt applies server-side)")
        backend.force_conflicts = True
    return backend


def read_for_planning(path: str, target: str | None, *, use_cache: bool = True) -> Desired:
    """The tree at `path` for a plan (or for apply to decide there is nothing to do):
    from the cache with secrets digested (rule 10) where the selected backend can plan
    from digests; read in full where it sends desired objects out to compare (KubeVirt's
    server-side dry run), or without the cache."""
    from reconciler.tree.source import read_desired

    desired = read_desired(path, digested=use_cache, use_cache=use_cache)
    if desired.digested and not registry.for_tree(desired.manifests, target).plans_from_digests:
        desired = read_desired(path, use_cache=use_cache)
    return desired


@contextmanager
def open_backend(desired: Desired, args: argparse.Namespace | None, *,
                 every_installation: bool = False) -> Iterator[Backend]:
    """`make_backend`, closed when the command is done with it."""
    backend = make_backend(desired, args, every_installation=every_installation)
    try:
        yield backend
    finally:
        backend.close()


WORD_STYLE = {ApplyWord.FAILED: "bold red", ApplyWord.DELETED: "red",
              ApplyWord.REPLACED: "yellow", ApplyWord.RESTARTED: "yellow",
              ApplyWord.SKIPPED: "dim"}


@contextmanager
def progress_reporter(total: int) -> Iterator[Callable[[Outcome], None]]:
    """A progress bar on a terminal; one line per object otherwise (kubectl's words)."""
    if not sys.stderr.isatty():
        def line(o: Outcome) -> None:
            detail = f" ({o.detail})" if o.detail else ""
            print(f"{o.key} {o.word}{detail}", flush=True)

        yield line
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(stderr=True)
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                  MofNCompleteColumn(), console=console, transient=True) as progress:
        task = progress.add_task("applying", total=total)

        def bar(o: Outcome) -> None:
            style = WORD_STYLE.get(o.word, "green")
            detail = f" ({o.detail})" if o.detail else ""
            progress.console.print(f"{escape(str(o.key))} [{style}]{o.word}[/{style}]"
                                   f"{escape(detail)}",
                                   highlight=False)
            progress.advance(task)

        yield bar
