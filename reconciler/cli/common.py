"""Pieces several subcommands share: backend construction, progress, error printing."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from reconciler.apply import Outcome
from reconciler.backends.base import Backend
from reconciler.model import Manifest
from reconciler.reconcile import Desired


def add_backend_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="colour terminal output (auto: on a terminal, unless NO_COLOR)")


def make_backend(desired: Desired | Sequence[Manifest],
                 args: argparse.Namespace | None) -> Backend:
    """The libvirt backend for the nodes of the tree's Cluster object (or the default
    local node: VIRTSYNC_LIBVIRT_URI, else qemu:///system)."""
    from reconciler.backends.libvirt import LibvirtBackend

    manifests = desired.manifests if isinstance(desired, Desired) else desired
    return LibvirtBackend.from_manifests(manifests)


WORD_STYLE = {"failed": "bold red", "deleted": "red", "replaced": "yellow",
              "restarted": "yellow", "skipped": "dim"}


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
