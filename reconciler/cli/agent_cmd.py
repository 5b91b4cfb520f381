"""`virtsync agent [PATH]`: enforce run strategies on the Cluster's nodes, nothing else.

`virtsync watch` runs these lifecycle agents itself. Hosts reconciled by `virtsync apply`
alone (from CI, say) run this as a service instead, so an `Always` VM that crashes or is
shut down from inside comes back, `RerunOnFailure` restarts only after a crash, and
CrashLoopBackOff backs off. It changes no spec: only power state, as git declares it.
"""

from __future__ import annotations

import argparse
import sys

from reconciler.backends.base import Backend, NodeAgent
from reconciler.cli.common import add_scope_argument, open_backend
from reconciler.cli.summaries import SUMMARIES
from reconciler.core.model import ExitCode, VirtsyncError
from reconciler.core.signals import StopSignals
from reconciler.planning.reconcile import load_desired

NAME = "agent"
HELP = SUMMARIES[NAME]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", default=".", metavar="PATH",
                   help="the specs' folder: its Cluster object names the nodes (default: .)")
    add_scope_argument(p, "enforce run strategies on")


def run(args: argparse.Namespace) -> ExitCode:
    desired = load_desired([args.path])
    # The backend's scope already covers every installation when asked to.
    # Signals are caught before the agents start: one sent as soon as the first says it
    # runs still stops them all.
    with open_backend(desired, args, every_installation=args.all_installations) as backend, \
            StopSignals() as stop:
        agents = _start_agents(backend)
        stop.wait()
        for agent in agents:
            agent.stop()
    print("virtsync agent: stopped", file=sys.stderr)
    return ExitCode.OK


def _start_agents(backend: Backend) -> list[NodeAgent]:
    wanted = backend.agents()
    if not wanted:
        raise VirtsyncError(f"backend {backend.profile.name!r} runs no node agents")
    agents: list[NodeAgent] = []
    for name, agent in wanted.items():
        try:
            agent.start()
        except VirtsyncError as exc:
            for started in agents:
                started.stop()
            raise VirtsyncError(f"node {name}: cannot start the lifecycle agent: {exc}") from exc
        agents.append(agent)
        print(f"virtsync agent: enforcing run strategies on node {name}", file=sys.stderr)
    return agents

