"""`virtsync` command line. Each subcommand lives in its own module exposing

    NAME: str                      # the subcommand word
    HELP: str                      # one line for `virtsync --help`
    def add_arguments(p: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int   # the exit code

and is listed in SUBCOMMANDS below (imported lazily so `virtsync validate` never pays
for libvirt). Exit codes: 0 ok, 1 findings/changes, 2 usage or internal error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

from reconciler import __version__
from reconciler.cli.summaries import SUMMARIES

# subcommand word → module under reconciler.cli
SUBCOMMANDS: dict[str, str] = {
    "validate": "reconciler.cli.validate_cmd",
    "plan": "reconciler.cli.plan_cmd",
    "pin": "reconciler.cli.pin_cmd",
    "apply": "reconciler.cli.apply_cmd",
    "status": "reconciler.cli.status_cmd",
    "start": "reconciler.cli.power_cmd",
    "stop": "reconciler.cli.power_cmd",
    "restart": "reconciler.cli.power_cmd",
    "agent": "reconciler.cli.agent_cmd",
    "watch": "reconciler.cli.watch_cmd",
}

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2


def _module(name: str) -> ModuleType:
    return importlib.import_module(SUBCOMMANDS[name])


def build_parser(only: str | None = None, *, summary: bool = False) -> argparse.ArgumentParser:
    """The full parser, or (with `only`) one that loads just that subcommand's module, so
    `virtsync validate` never imports libvirt or the plan renderers; with `summary`, one
    that lists the subcommands and loads none (`virtsync --help`)."""
    parser = argparse.ArgumentParser(
        prog="virtsync", allow_abbrev=False,
        description="GitOps for virtual machines: validate, plan and reconcile VM specs from git.",
    )
    parser.add_argument("--version", action="version", version=f"virtsync {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for word in SUBCOMMANDS:
        if only is not None and word != only:
            sub.add_parser(word, help=argparse.SUPPRESS, allow_abbrev=False)
            continue
        if summary:
            sub.add_parser(word, help=SUMMARIES[word], allow_abbrev=False)
            continue
        mod = _module(word)
        p = sub.add_parser(word, help=mod.HELP, description=mod.HELP,
                           allow_abbrev=False)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = (build_parser(first) if first in SUBCOMMANDS else build_parser(summary=True))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    from reconciler.core.model import VirtsyncError  # not before a command runs

    try:
        return int(args._run(args))
    except VirtsyncError as exc:
        sys.stderr.write(exc.details)
        print(f"virtsync: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("virtsync: interrupted", file=sys.stderr)
        return 130
    except Exception:  # an internal bug: say so plainly, keep the traceback for the report
        traceback.print_exc()
        print("virtsync: internal error (a bug in virtsync; please report it)",
              file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
