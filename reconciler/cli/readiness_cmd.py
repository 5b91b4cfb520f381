"""`virtsync readiness PATH`: before moving VMs, what each one needs of the platform
(storage, network, live migration, shape and fit, shutdown, security), from the tree and
its Cluster object alone; no host is contacted (docs/migration.md)."""

from __future__ import annotations

import argparse
import sys

from node.cluster.config import cluster_from_manifests, node_facts
from reconciler.cli.summaries import SUMMARIES
from reconciler.core.model import ExitCode
from reconciler.planning.moves import move_context
from reconciler.planning.readiness import UNKNOWN_KIB, readiness
from reconciler.planning.reconcile import load_desired
from reconciler.render.readiness import render_json, render_markdown, render_text

NAME = "readiness"
HELP = SUMMARIES[NAME]
RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", default=".", metavar="PATH",
                   help="a directory or file of YAML specs (default: .)")
    p.add_argument("--output", "-o", choices=list(RENDERERS), default="text")


def run(args: argparse.Namespace) -> ExitCode:
    desired = load_desired([args.path])  # an invalid tree is refused (rule 1)
    config = cluster_from_manifests(desired.manifests)
    # Capacity as the Cluster object configures it; the rest is measured live, not here.
    nodes = [node_facts(n, n.memory_mib * 1024 if n.memory_mib else UNKNOWN_KIB)
             for n in config.nodes]
    unknown = [n.name for n in config.nodes if not n.memory_mib]
    report = readiness(desired.manifests, nodes, move_context(desired.manifests, nodes),
                       unknown)
    sys.stdout.write(RENDERERS[args.output](report))
    return ExitCode.OK
