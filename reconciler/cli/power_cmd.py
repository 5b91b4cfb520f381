"""`virtsync start|stop|restart NAME`: operator power control without rewriting git.

With runStrategy Manual these are the only power control. Otherwise the node records
the operator's stop so the run strategy does not undo it (shown in status): no apply,
watch cycle or agent starts the VM again until git changes its runStrategy or
`virtsync start` is used (safety rule 16). A Halted VM is not started: the run strategy
would stop it again at once; change runStrategy in git instead.
"""

from __future__ import annotations

import argparse

from reconciler.cli.common import add_target_argument, open_backend
from reconciler.cli.summaries import SUMMARIES
from reconciler.core.model import DEFAULT_NAMESPACE, ExitCode, ObjectKey, VirtsyncError
from reconciler.core.power import RunStrategy, run_strategy
from reconciler.tree.source import read_desired

NAME = "start"  # also registered as "stop" and "restart"; args.command tells which
HELP = SUMMARIES[NAME]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="VM name, or NAMESPACE/NAME")
    p.add_argument("-n", "--namespace", default=None,
                   help=f"namespace (default: {DEFAULT_NAMESPACE})")
    p.add_argument("--path", default=".", metavar="PATH",
                   help="the specs' folder (its Cluster object names the nodes)")
    p.add_argument("--grace-period", type=int, metavar="S",
                   help="seconds to wait for the guest to shut down")
    p.add_argument("--force", action="store_true",
                   help="power off if the guest does not shut down in time (may corrupt data)")
    add_target_argument(p)


def key_of(args: argparse.Namespace) -> ObjectKey:
    name = args.name
    namespace = args.namespace
    if "/" in name:
        namespace, name = name.split("/", 1)
    return ObjectKey("VirtualMachine", namespace or DEFAULT_NAMESPACE, name)


def run(args: argparse.Namespace) -> ExitCode:
    verb = str(args.command)
    key = key_of(args)
    desired = read_desired(args.path)
    with open_backend(desired, args) as backend:
        live = {o.key: o for o in backend.observe().objects}
        if key not in live:
            raise VirtsyncError(f"{key} is not a VM managed by virtsync on these nodes")
        if verb != "stop" and run_strategy(live[key].body) is RunStrategy.HALTED:
            raise VirtsyncError(f"{key}: runStrategy is Halted, so the guest would be "
                                "stopped again at once (rule 16); change runStrategy in git "
                                "to run it")
        if verb == "start":
            backend.start(key)
        elif verb == "stop":
            backend.stop(key, grace_period=args.grace_period, force=args.force)
        else:
            backend.restart(key, grace_period=args.grace_period, force=args.force)
    print(f"{key} {dict(start='started', stop='stopped', restart='restarted')[verb]}")
    return ExitCode.OK
