"""`virtsync` command line. Each subcommand lives in its own module exposing

    NAME: str                      # the subcommand word
    HELP: str                      # one line for `virtsync --help`
    def add_arguments(p: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> ExitCode   # reconciler.core.model.ExitCode
    def preload(args: argparse.Namespace) -> None   # optional: import what run will

and is listed in SUBCOMMANDS below (imported lazily so `virtsync validate` never pays
for libvirt). Exit codes (`ExitCode`): 0 ok, 1 findings/changes, 2 usage or internal
error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
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
        p.set_defaults(_run=mod.run, _preload=getattr(mod, "preload", None))
    return parser


GC_THRESHOLD = (100_000, 20, 10)  # the collector's thresholds in a virtsync process


def process_main() -> int:
    """The process's entry point (the console script, `python -m`): `main` with the
    garbage collector kept out of start-up. Importing a command makes only objects that
    live as long as the process (modules, classes, compiled patterns): collecting while
    they are made, and scanning them again at every later collection and at exit, cost
    30-50 ms per run for nothing. Not for in-process callers (tests), whose garbage
    `gc.freeze` would keep. A run at 10,000 VMs keeps millions of objects alive at once:
    with the default threshold (700) the collector rescanned them all a dozen times,
    ~4 s of a host-mode plan (issue 13); garbage cycles are rare here."""
    gc.disable()
    gc.set_threshold(*GC_THRESHOLD)
    return main(settle_gc=True)


def main(argv: Sequence[str] | None = None, *, settle_gc: bool = False) -> int:
    """An ExitCode, or argparse's. `settle_gc`: see process_main."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = (build_parser(first) if first in SUBCOMMANDS else build_parser(summary=True))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if getattr(args, "_preload", None):
        # What this run will import, while start-up's collector is still off (a host-mode
        # plan's stack is imported lazily so a git-mode plan never pays for it).
        args._preload(args)
    if settle_gc:
        gc.freeze()
        gc.enable()
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        from reconciler.core.errors import ExitCode
        return ExitCode.FAILED
    from reconciler.core.errors import ExitCode, VirtsyncError  # not before a command runs

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
        import traceback  # only on this path: start-up pays for the command alone

        traceback.print_exc()
        print("virtsync: internal error (a bug in virtsync; please report it)",
              file=sys.stderr)
        return ExitCode.FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
