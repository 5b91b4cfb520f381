"""Live migration of one running domain from one libvirt node to another, peer to peer.

The source daemon drives the migration (`VIR_MIGRATE_PEER2PEER`), so a client that dies
mid-way does not leave the guest in between: libvirt either finishes on the target or
keeps the guest on the source. The domain is defined on the target and undefined on the
source only when the migration succeeded (`PERSIST_DEST | UNDEFINE_SOURCE`).

Storage: nodes that share their storage directory (`sharedStorage: true`, same path)
move memory only; otherwise every writable disk is copied into a file virtsync creates
first on the target (block migration, `NON_SHARED_INC`: a containerDisk overlay's base
image is copied once, the overlay's own data by QEMU). The destination XML is the live
definition with the node's directories swapped (disks, console log), so the guest keeps
its UUID, serial, MACs and disk serials by construction.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
from lxml import etree

from node.cluster.host import NodeHost
from node.identity.metadata import move_owner_to
from node.lifecycle.migrating import outgoing_migration
from node.storage.disks import new_blank, new_overlay
from node.storage.paths import checked_chain, image_info
from reconciler.core.migration import (
    MigrationMethod,
    MigrationOutcome,
    MigrationPolicy,
    MigrationProgress,
)
from reconciler.core.model import VirtsyncError

BASE_FLAGS: int = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
              | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
POLL_SECONDS = 0.25


class MigrationFailed(VirtsyncError):
    """The migration did not complete; the guest still runs on the source."""


@dataclass(frozen=True)
class NodeDirs:
    """A node's directories as the migration sees them."""

    storage_dir: str
    image_dir: str
    console_dir: str
    shared: bool  # storage_dir is shared storage
    name: str = ""  # the Cluster node entry (written into the owner marker)


@dataclass(frozen=True)
class DiskCopy:
    """A writable disk whose file moves to the target node and is copied by QEMU."""

    target: str  # the guest's device name (vda)
    format: str  # as the domain states it (never probed: the guest writes this file)
    source_path: str
    dest_path: str


@dataclass(frozen=True)
class MovePlan:
    """What the migration does to storage: the destination XML, the disks QEMU copies,
    and read-only files (base images, ISOs, seeds) that must exist on the target."""

    dest_xml: str
    copies: tuple[DiskCopy, ...]
    read_only: tuple[tuple[str, str], ...]  # (source path, target path)

    @property
    def method(self) -> MigrationMethod:
        return MigrationMethod.BLOCK if self.copies else MigrationMethod.LIVE


def _moved(path: str, source: str, dest: str) -> str | None:
    """`path` re-rooted from directory `source` to `dest`, or None when it is not inside."""
    src = Path(source)
    p = Path(path)
    if p == src or src in p.parents:
        return str(Path(dest) / p.relative_to(src))
    return None


def plan_move(xml: str, source: NodeDirs, target: NodeDirs) -> MovePlan:
    """Pure: the destination XML and the storage work for moving a domain between nodes."""
    root = etree.fromstring(xml.encode())
    shared = source.shared and target.shared and source.storage_dir == target.storage_dir
    copies: list[DiskCopy] = []
    read_only: list[tuple[str, str]] = []
    for disk in root.iterfind("devices/disk"):
        src = disk.find("source")
        path = src.get("file") if src is not None else None
        if src is None or path is None:
            continue
        in_images = _moved(path, source.image_dir, target.image_dir)
        in_storage = None if shared else _moved(path, source.storage_dir, target.storage_dir)
        dest = in_images or in_storage
        if dest is None:
            continue  # shared storage, or a path outside the node's trees (hostDisk)
        src.set("file", dest)
        if disk.find("readonly") is not None or in_images is not None:
            read_only.append((path, dest))
        else:
            target_dev = disk.find("target")
            driver = disk.find("driver")
            copies.append(DiskCopy(
                target_dev.get("dev", "") if target_dev is not None else "",
                driver.get("type", "raw") if driver is not None else "raw", path, dest))
    for log in root.iterfind("devices/serial/log"):
        moved = _moved(log.get("file", ""), source.console_dir, target.console_dir)
        if moved is not None:
            log.set("file", moved)
    if target.name:
        move_owner_to(root, target.name)  # else the target's node entry would not see it
    dest_xml = etree.tostring(root, encoding="unicode")
    return MovePlan(dest_xml, tuple(copies), tuple(read_only))


def prepare_target(plan: MovePlan, source: NodeDirs, target: NodeDirs) -> None:
    """Create on the target what QEMU copies into (same format and size; an overlay on the
    same base, copied to the target's image directory once) and copy the read-only files
    it does not have yet. Existing target files are never overwritten."""
    for src, dest in plan.read_only:
        _copy_once(src, dest)
    for copy in plan.copies:
        out = Path(copy.dest_path)
        if out.exists():
            raise VirtsyncError(f"{out} already exists on the target node; refusing to "
                                "overwrite it with a migration copy")
        top = checked_chain(copy.source_path, copy.format,
                            [source.storage_dir, source.image_dir], copy.source_path)[0]
        if top.backing_file is None:
            new_blank(out, copy.format, top.virtual_size)
            continue
        base = _moved(top.backing_file, source.image_dir, target.image_dir)
        if base is None:
            raise VirtsyncError(f"{copy.source_path}: its base {top.backing_file} is not in "
                                "the node's image directory")
        _copy_once(top.backing_file, base)
        new_overlay(out, Path(base), top.backing_format or "raw")


def _copy_once(src: str, dest: str) -> None:
    """Base images and ISOs are immutable: copy one to the target only when missing."""
    if Path(dest).exists():
        return
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(dest).with_name(f".{Path(dest).name}.part")
    shutil.copy2(src, tmp)
    tmp.replace(dest)


def _params(plan: MovePlan, persist_xml: str, policy: MigrationPolicy) -> dict[str, Any]:
    params: dict[str, Any] = {libvirt.VIR_MIGRATE_PARAM_DEST_XML: plan.dest_xml,
                              libvirt.VIR_MIGRATE_PARAM_PERSIST_XML: persist_xml}
    if policy.bandwidth_bytes:
        # libvirt takes MiB/s; never round a set limit down to "unlimited" (0).
        params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = max(1, policy.bandwidth_bytes >> 20)
    if plan.copies:
        params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = [c.target for c in plan.copies]
    return params


def _flags(plan: MovePlan, policy: MigrationPolicy) -> int:
    flags: int = BASE_FLAGS
    if plan.copies:
        flags |= libvirt.VIR_MIGRATE_NON_SHARED_INC
    else:
        # A plain directory both daemons see: libvirt cannot tell it is shared.
        flags |= libvirt.VIR_MIGRATE_UNSAFE
    if policy.allow_auto_converge:
        flags |= libvirt.VIR_MIGRATE_AUTO_CONVERGE
    if policy.allow_post_copy:
        flags |= libvirt.VIR_MIGRATE_POSTCOPY
    return flags


class _Watch:
    """Samples the source's job while the migration runs; past the completion timeout it
    switches to post-copy when the policy allows it, else aborts (KubeVirt's rule)."""

    def __init__(self, dom: Any, timeout: float, policy: MigrationPolicy,
                 on_progress: Callable[[MigrationProgress], None] | None) -> None:
        self.dom = dom
        self.timeout = timeout
        self.policy = policy
        self.on_progress = on_progress
        self.started = time.monotonic()
        self.post_copy = False
        self.timed_out = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                stats = self.dom.jobStats(0)
            except libvirt.libvirtError:
                return  # the source domain is gone: the migration finished
            elapsed = time.monotonic() - self.started
            if self.on_progress is not None and stats.get("type", 0):
                self.on_progress(MigrationProgress(elapsed, int(stats.get("data_processed", 0)),
                                          int(stats.get("data_remaining", 0)),
                                          int(stats.get("data_total", 0)), self.post_copy))
            if elapsed > self.timeout and not self.post_copy and not self.timed_out:
                self._on_timeout()

    def _on_timeout(self) -> None:
        try:
            if self.policy.allow_post_copy:
                self.dom.migrateStartPostCopy(0)
                self.post_copy = True
            else:
                self.timed_out = True
                self.dom.abortJob()
        except libvirt.libvirtError:
            pass  # finished meanwhile


def migrate(dom: Any, target_uri: str, target_conn: Any, plan: MovePlan, persist_xml: str,
            policy: MigrationPolicy, *, timeout: float,
            on_progress: Callable[[MigrationProgress], None] | None = None) -> MigrationOutcome:
    """Run the migration to completion or failure. On failure the guest still runs on
    the source (libvirt's guarantee for a live migration), and the error says why."""
    name = dom.name()
    began = time.monotonic()
    with _Watch(dom, timeout, policy, on_progress) as watch:
        try:
            dom.migrateToURI3(target_uri, _params(plan, persist_xml, policy), _flags(plan, policy))
        except libvirt.libvirtError as exc:
            why = (f"it did not complete within {timeout:.0f} s (completionTimeoutPerGiB)"
                   if watch.timed_out else str(exc))
            raise MigrationFailed(f"migrating {name} to {target_uri}: {why}; the guest "
                                  "keeps running on the source") from exc
    seconds = time.monotonic() - began
    stats: Mapping[str, Any] = {}
    try:
        stats = target_conn.lookupByName(name).jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    except libvirt.libvirtError:
        pass  # statistics are a report, not a result
    return MigrationOutcome(seconds, int(stats.get("downtime", -1)), plan.method, watch.post_copy)


def node_dirs(host: NodeHost) -> NodeDirs:
    config = host.config
    return NodeDirs(config.storage_dir, config.image_dir, str(host.console_log_dir()),
                    config.shared_storage, config.name)


def live_migrate(source: NodeHost, target: NodeHost, dom: Any, policy: MigrationPolicy,
                 on_progress: Callable[[MigrationProgress], None] | None = None) -> MigrationOutcome:
    """Move the running domain `dom` from `source` to `target`: prepare the target's
    files, migrate, and on failure remove the files this call created there."""
    src, dst = node_dirs(source), node_dirs(target)
    live = plan_move(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE), src, dst)
    persist = plan_move(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE
                                    | libvirt.VIR_DOMAIN_XML_INACTIVE), src, dst)
    target_conn = target.conn()  # checks QEMU can reach the target's directories first
    Path(dst.console_dir).mkdir(parents=True, exist_ok=True)
    created = [c.dest_path for c in live.copies]
    prepare_target(live, src, dst)
    copied_kib = sum(image_info(c.dest_path, c.format).virtual_size for c in live.copies) // 1024
    timeout = policy.timeout_seconds(int(dom.maxMemory()) + copied_kib)
    try:
        outcome = migrate(dom, target.config.peer_uri, target_conn, live, persist.dest_xml,
                          policy, timeout=timeout, on_progress=on_progress)
    except MigrationFailed:
        for path in created:
            Path(path).unlink(missing_ok=True)
        raise
    remove_copied_sources(live)
    return outcome


def remove_copied_sources(plan: MovePlan) -> None:
    """After a successful block migration the source node's copies of the disks QEMU
    copied are used by nothing (the domain is undefined there): remove them (rule 13).
    Only those files: base images and read-only files stay, and nothing on failure."""
    for copy in plan.copies:
        Path(copy.source_path).unlink(missing_ok=True)


def abort_migration(dom: Any) -> bool:
    """Abort the domain's outgoing migration job; False when it has none."""
    try:
        info = dom.jobStats(0)
    except libvirt.libvirtError as exc:
        raise VirtsyncError(f"reading {dom.name()}'s job: {exc}") from exc
    if outgoing_migration(info) is None:
        return False
    try:
        dom.abortJob()
    except libvirt.libvirtError as exc:
        raise VirtsyncError(f"aborting {dom.name()}'s migration: {exc}") from exc
    return True
