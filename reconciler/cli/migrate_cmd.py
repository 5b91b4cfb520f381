"""`virtsync migrate NAME [--to NODE] [--wait] [--cancel]`: live-migrate a running VM.

The target is `--to NODE`, else the first node the placement rules (node selector,
affinity, capacity, cordons) and the migratability rules allow. A VM that cannot move
says why, in KubeVirt's words (`DisksNotLiveMigratable`, …), before anything happens.
Without `--wait` the migration runs in a detached process (its log in the state
directory) and `virtsync status` shows `Migrating`; `--cancel` aborts a running one and
leaves the guest where it was. Git is not changed: the plan keeps the VM on its new node
as long as the node still satisfies its spec.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reconciler.backends.base import Backend
from reconciler.cli.common import add_target_argument, open_backend
from reconciler.cli.power_cmd import key_of
from reconciler.cli.summaries import SUMMARIES
from reconciler.core.migration import MigrationProgress, policy_for
from reconciler.core.model import ExitCode, Manifest, ObjectKey, PrintableStatus, VirtsyncError
from reconciler.core.statedir import state_dir
from reconciler.execute.cordons import observe
from reconciler.execute.lock import StateLock
from reconciler.planning.moves import (
    MoveContext,
    migration_targets,
    move_context,
    vm_migratability,
)
from reconciler.tree.desired import Desired
from reconciler.tree.source import read_desired

NAME = "migrate"
HELP = SUMMARIES[NAME]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="VM name, or NAMESPACE/NAME")
    p.add_argument("-n", "--namespace", default=None, help="namespace (default: default)")
    p.add_argument("--path", default=".", metavar="PATH",
                   help="the specs' folder (its Cluster object names the nodes)")
    p.add_argument("--to", metavar="NODE", help="the target node (default: the first that "
                   "the placement and migration rules allow)")
    p.add_argument("--wait", action="store_true",
                   help="run the migration here and wait for it (progress on a terminal)")
    p.add_argument("--cancel", action="store_true",
                   help="abort the VM's running migration; the guest stays on its node")
    add_target_argument(p)


def run(args: argparse.Namespace) -> ExitCode:
    key = key_of(args)
    desired = read_desired(args.path)
    with open_backend(desired, args) as backend:
        if args.cancel:
            done = backend.cancel_migration(key)
            print(f"{key}: migration cancelled" if done else f"{key}: no migration running")
            return ExitCode.OK
        route = _route(backend, desired, key, args.to)
        source, target = route.source, route.target
        shown = target or "the node its scheduler picks"
        if not args.wait:
            log = _detach(args, key, target)
            print(f"{key}: migrating {source} → {shown} (log: {log}); "
                  "`virtsync status` shows its progress")
            return ExitCode.OK
        with StateLock(state_dir()):
            outcome = backend.migrate(key, source=source, target=target,
                                      policy=policy_for(route.vm.body, route.ctx.policy),
                                      progress=_progress_printer(key))
    _end_progress()
    print(f"{key} migrated {source} → {shown} in {outcome.seconds:.1f} s "
          f"({outcome.method}, downtime {_ms(outcome.downtime_ms)})")
    return ExitCode.OK


def _desired_vm(desired: Desired, key: ObjectKey) -> Manifest:
    vm = next((m for m in desired.manifests if m.key == key), None)
    if vm is None:
        raise VirtsyncError(f"{key} is not in the tree; only a VM virtsync manages migrates")
    return vm


@dataclass(frozen=True)
class _Route:
    source: str
    target: str
    vm: Manifest
    ctx: MoveContext


def _route(backend: Backend, desired: Desired, key: ObjectKey, wanted: str | None) -> _Route:
    """Where the VM runs and where it goes, or an error saying why it cannot move."""
    observation = observe(backend)
    live = next((o for o in observation.objects if o.key == key), None)
    if live is None or not live.node:
        raise VirtsyncError(f"{key} is not a VM virtsync runs on these nodes")
    if live.status.printable_status is not PrintableStatus.RUNNING:
        raise VirtsyncError(f"{key} is not running; start it, or change its node in git")
    vm = _desired_vm(desired, key)
    ctx = move_context(desired.manifests, observation.nodes,
                       live=backend.profile.classification.live_migration)
    if not observation.nodes:
        # A backend that places VMs itself (KubeVirt): its scheduler picks the target,
        # `--to` only narrows it; its own LiveMigratable condition decides.
        if wanted == live.node:
            raise VirtsyncError(f"{key} already runs on {wanted}")
        return _Route(live.node, wanted or "", vm, ctx)
    targets, verdict = migration_targets(vm, live.node, ctx)
    if wanted is not None:
        if wanted == live.node:
            raise VirtsyncError(f"{key} already runs on {wanted}")
        if wanted not in ctx.nodes:
            raise VirtsyncError(f"no node named {wanted!r} in the Cluster object")
        if wanted not in targets:
            verdict = vm_migratability(vm, live.node, wanted, ctx)
            why = verdict.describe() if not verdict.migratable else (
                f"{wanted} is cordoned or does not satisfy the VM's placement or capacity")
            raise VirtsyncError(f"{key} cannot live-migrate to {wanted}: {why}")
        return _Route(live.node, wanted, vm, ctx)
    if not targets:
        raise VirtsyncError(f"{key} cannot live-migrate from {live.node}: {verdict.describe()}")
    return _Route(live.node, targets[0], vm, ctx)


def _detach(args: argparse.Namespace, key: ObjectKey, target: str) -> Path:
    """Run `migrate --wait` in its own session, so this command returns at once."""
    logs = state_dir() / "migrations"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{key.namespace}_{key.name}.log"
    # `python -m` the reconciler package, whatever the install calls it.
    package = __name__.rsplit(".", 2)[0]
    cmd = [sys.executable, "-m", package, "migrate", f"{key.namespace}/{key.name}",
           "--path", str(args.path), *(["--to", target] if target else []), "--wait"]
    with log.open("ab") as out:
        subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                         start_new_session=True)
    return log


def _progress_printer(key: ObjectKey) -> Callable[[MigrationProgress], None]:
    tty = sys.stderr.isatty()

    def show(p: MigrationProgress) -> None:
        if tty:
            phase = "post-copy" if p.post_copy else "copying"
            sys.stderr.write(f"\r{key}: {phase} {p.percent:3d}% "
                             f"({p.processed >> 20} MiB, {p.elapsed:.0f} s)\x1b[K")
            sys.stderr.flush()
    return show


def _end_progress() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\n")


def _ms(value: int) -> str:
    return "unknown" if value < 0 else f"{value} ms"
