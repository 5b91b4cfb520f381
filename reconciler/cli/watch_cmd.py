"""`virtsync watch`: reconcile continuously as the tree (or the git ref) changes.

    virtsync watch PATH [--git | --git-ref REF] [--interval S] [--prune] [--max-prune N]
                        [--allow-restart] [--allow-data-loss] [--force-stop]
                        [--metrics-port P] [--metrics-address A] [--no-agent]
                        [--all-installations]

Logs are JSON lines on stderr. SIGTERM or SIGINT: the action in progress finishes, then
exit 0. Exit 2 when it cannot start (lock held, bad path or ref).
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Sequence
from types import FrameType

from reconciler.backends.base import Backend
from reconciler.cli.common import add_change_permission_arguments, apply_options
from reconciler.cli.summaries import SUMMARIES
from reconciler.core.model import ExitCode, Manifest, VirtsyncError
from reconciler.core.statedir import state_dir
from reconciler.execute.lock import StateLock

NAME = "watch"
HELP = SUMMARIES[NAME]


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", default=".", metavar="PATH",
                   help="folder (or file) of YAML specs (default: .)")
    p.add_argument("--git", action="store_true",
                   help="reconcile what is committed at HEAD, never the working tree")
    p.add_argument("--git-ref", metavar="REF",
                   help="reconcile what is committed at REF (implies --git), e.g. origin/main")
    p.add_argument("--interval", type=_positive, default=60.0, metavar="S",
                   help="seconds between full resyncs that find and heal drift (default: 60)")
    p.add_argument("--debounce", type=float, default=0.01, metavar="S",
                   help="quiet period once every changed file is complete (closed or "
                        "renamed into place) before acting (default: 0.01)")
    add_change_permission_arguments(p, what_left="the tree")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve Prometheus metrics on this port (0: any free port)")
    p.add_argument("--metrics-address", default="127.0.0.1", metavar="ADDR",
                   help="address for the metrics endpoint (default: 127.0.0.1)")
    p.add_argument("--no-agent", action="store_true",
                   help="do not run the node lifecycle agent (run strategies) in this process")
    p.add_argument("--all-installations", action="store_true",
                   help="the lifecycle agent enforces run strategies on every virtsync VM on "
                        "the nodes, also other installations' (changes stay this one's)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                   default="info", help="least severe log level written (default: info)")


def run(args: argparse.Namespace) -> ExitCode:
    from reconciler.cli.common import make_backend
    from reconciler.watch.logs import JsonLogger
    from reconciler.watch.metrics import WatchMetrics
    from reconciler.watch.watcher import Watcher, WatchOptions

    if args.debounce < 0:
        raise VirtsyncError("--debounce must not be negative")
    options = WatchOptions(
        path=args.path, git=bool(args.git or args.git_ref), git_ref=args.git_ref or "HEAD",
        interval=args.interval, debounce=args.debounce, max_delay=max(1.0, args.debounce * 10),
        apply=apply_options(args), agent=not args.no_agent,
        agent_every_installation=args.all_installations,
    )
    log = JsonLogger(level=args.log_level)
    metrics = WatchMetrics() if args.metrics_port is not None else None

    def backend_factory(manifests: Sequence[Manifest]) -> Backend:
        return make_backend(manifests, args)

    def serve_metrics() -> None:
        if metrics is not None:
            port = metrics.serve(args.metrics_port, args.metrics_address)
            log.info("metrics.serve", address=args.metrics_address, port=port)

    state = state_dir()
    with StateLock(state):
        watcher = Watcher(options, state=state, backend_factory=backend_factory, log=log,
                          metrics=metrics)

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            watcher.request_stop(signal.Signals(signum).name)

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            watcher.run(after_startup=serve_metrics)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    return ExitCode.OK
