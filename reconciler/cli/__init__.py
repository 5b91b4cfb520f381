"""`virtsync` command line. Each subcommand lives in its own module exposing

    NAME: str                      # the subcommand word
    HELP: str                      # one line for `virtsync --help`
    def add_arguments(p: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> ExitCode   # reconciler.core.model.ExitCode

and is listed in SUBCOMMANDS below (imported lazily so `virtsync validate` never pays
for libvirt). Exit codes (`ExitCode`): 0 ok, 1 findings/changes, 2 usage or internal
error, 130 interrupted.
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

# subcommand word → module, relative to this package (the wheel installs it as
# virtsync.reconciler.cli: tools/build_backend/virtsync_build.py rewrites imports, not strings)
SUBCOMMANDS: dict[str, str] = {
    "validate": ".validate_cmd",
    "render": ".render_cmd",
    "plan": ".plan_cmd",
    "pin": ".pin_cmd",
    "apply": ".apply_cmd",
    "status": ".status_cmd",
    "start": ".power_cmd",
    "stop": ".power_cmd",
    "restart": ".power_cmd",
    "agent": ".agent_cmd",
    "watch": ".watch_cmd",
    "readiness": ".readiness_cmd",
    "migrate": ".migrate_cmd",
    "drain": ".drain_cmd",
    "uncordon": ".drain_cmd",
}

def _module(name: str) -> ModuleType:
    return importlib.import_module(SUBCOMMANDS[name], __package__)


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


def main(argv: Sequence[str] | None = None) -> int:  # an ExitCode, or argparse's
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = (build_parser(first) if first in SUBCOMMANDS else build_parser(summary=True))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        from reconciler.core.model import ExitCode
        return ExitCode.FAILED
    from reconciler.core.model import ExitCode, VirtsyncError  # not before a command runs

    try:
        code: ExitCode = args._run(args)
        return code
    except VirtsyncError as exc:
        sys.stderr.write(exc.details)
        print(f"virtsync: error: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    except KeyboardInterrupt:
        print("virtsync: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception:  # an internal bug: say so plainly, keep the traceback for the report
        traceback.print_exc()
        print("virtsync: internal error (a bug in virtsync; please report it)",
              file=sys.stderr)
        return ExitCode.FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
