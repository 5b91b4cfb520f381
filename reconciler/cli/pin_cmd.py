"""`virtsync pin [PATH...]`: write each VM's generated identity into its YAML file.

For every VirtualMachine under PATH with an identity in a node's identity store, sets
`spec.template.spec.domain.firmware.uuid`, `firmware.serial` and each interface's
`macAddress`, so identity lives in git and survives losing every host. Files are
edited with ruamel.yaml round-trip: comments, key order, quoting and indentation are
kept (the leading comment block and `---` are carried over verbatim, since ruamel drops
comments placed before a document start). Written values are double-quoted, so YAML 1.1
readers never see a MAC as a number or a serial as a float.

Where identity is read from: `--storage-dir` (repeatable); else the storageDir of every
node in a `Cluster` object found under PATH; else `$VIRTSYNC_STATE_DIR/storage`. With
`--from-cluster`, from the live VMs the tree's backend observes (KubeVirt: the firmware
UUID, serial and MACs the cluster filled in), so a VM recreated on another cluster keeps
its identity.

- Idempotent: a file that needs no change is not written at all, so a second run
  changes no byte.
- A VM without stored identity (or an interface without a stored MAC) is reported and
  skipped.
- A pin already in git that differs from the stored value is a conflict: all
  conflicts are reported (file:line), nothing is written, exit 1 — unless --force,
  which overwrites those pins with the stored identity.
- Any YAML problem in the tree: findings are printed, nothing is written, exit 2.
"""

from __future__ import annotations

import argparse
import io
import itertools
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from node.identity.node_store import Identity, IdentityStore
from reconciler.cli.common import add_target_argument
from reconciler.cli.summaries import SUMMARIES
from reconciler.core.fsutil import write_atomic
from reconciler.core.model import (
    KUBEVIRT_GROUP,
    VIRTSYNC_GROUP,
    ExitCode,
    Manifest,
    ObjectKey,
    VirtsyncError,
    api_group,
)
from reconciler.core.statedir import state_dir
from reconciler.core.vmspec import normalize_mac
from reconciler.tree.loader import LoadedFile, find_yaml_files, load_bytes, read_source

NAME = "pin"
HELP = SUMMARIES[NAME]

_KEY_OPENER = re.compile(r"^( *)[^\s#-][^:]*:\s*(#.*)?$")
_PREAMBLE_LINE = re.compile(r"^(\s*|#.*|%.*|---\s*)$")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", default=["."], metavar="PATH")
    p.add_argument(
        "--storage-dir",
        action="append",
        default=None,
        metavar="DIR",
        help="node storage directory to read identity from (repeatable)",
    )
    p.add_argument(
        "--from-cluster",
        action="store_true",
        help="read identity from the live VMs (the tree's backend, e.g. the KubeVirt "
             "cluster's server-filled firmware UUID, serial and MACs)",
    )
    add_target_argument(p)
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite pins in git that contradict the stored identity",
    )


@dataclass(frozen=True)
class Change:
    file: str
    line: int
    vm: str
    field: str
    value: str


@dataclass(frozen=True)
class Conflict:
    file: str
    line: int
    vm: str
    field: str
    pinned: str
    stored: str


@dataclass(frozen=True)
class Skip:
    file: str
    vm: str
    reason: str


@dataclass(frozen=True)
class FileEdit:
    """One file's outcome: the new text (None: unchanged) and what happened."""

    path: Path
    new_text: str | None
    changes: tuple[Change, ...]
    conflicts: tuple[Conflict, ...]
    skips: tuple[Skip, ...]


# -- where identity lives -------------------------------------------------------


def storage_dirs(manifests: Iterable[Manifest], explicit: Sequence[str] | None) -> list[Path]:
    if explicit:
        return [Path(d) for d in explicit]
    dirs: list[Path] = []
    for m in manifests:
        if m.kind != "Cluster" or m.group != VIRTSYNC_GROUP:
            continue
        spec = m.body.get("spec")
        nodes = spec.get("nodes") if isinstance(spec, Mapping) else None
        for node in nodes if isinstance(nodes, list) else []:
            storage = node.get("storageDir") if isinstance(node, Mapping) else None
            if isinstance(storage, str) and Path(storage) not in dirs:
                dirs.append(Path(storage))
    return dirs or [state_dir() / "storage"]


def lookup(stores: Sequence[IdentityStore], key: ObjectKey) -> Identity | None:
    """The VM's identity across all node stores; two different ones is an error."""
    found: list[tuple[IdentityStore, Identity]] = []
    for store in stores:
        ident = store.get(key)
        if ident is not None:
            found.append((store, ident))
    if len({repr(i.to_json()) for _, i in found}) > 1:
        where = ", ".join(str(s.storage_dir) for s, _ in found)
        raise VirtsyncError(f"{key}: different identities stored on several nodes ({where})")
    return found[0][1] if found else None


# -- YAML round-trip editing ----------------------------------------------------


def guess_indent(text: str) -> tuple[int, int]:
    """(mapping indent, block sequence dash offset) as the file already uses them."""
    lines = [
        ln for ln in text.splitlines()
        if ln.strip() and not ln.lstrip().startswith("#") and not ln.startswith("---")
    ]  # fmt: skip
    mapping: int | None = None
    offset: int | None = None
    for above, below in itertools.pairwise(lines):
        if not _KEY_OPENER.match(above):
            continue
        step = (len(below) - len(below.lstrip())) - (len(above) - len(above.lstrip()))
        if step <= 0:
            continue
        if below.lstrip().startswith("- "):
            offset = step if offset is None else offset
        elif mapping is None:
            mapping = step
    return mapping or 2, offset or 0


def split_preamble(text: str) -> tuple[str, str]:
    """Leading comments, blank lines, directives and the first `---`, kept verbatim."""
    lines = text.splitlines(keepends=True)
    n = 0
    while n < len(lines) and _PREAMBLE_LINE.match(lines[n].rstrip("\n")):
        n += 1
    return "".join(lines[:n]), "".join(lines[n:])


def _yaml(text: str) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines
    mapping, offset = guess_indent(text)
    yaml.indent(mapping=mapping, sequence=mapping + offset, offset=offset)
    return yaml


def _line(node: Any, key: str | None = None) -> int:
    try:
        if key is not None and isinstance(node, CommentedMap) and key in node:
            return int(node.lc.key(key)[0]) + 1
        return int(node.lc.line) + 1
    except (AttributeError, TypeError, KeyError):
        return 0


def _vm_key(doc: Any) -> ObjectKey | None:
    if not isinstance(doc, CommentedMap) or doc.get("kind") != "VirtualMachine":
        return None
    if api_group(str(doc.get("apiVersion", ""))) != KUBEVIRT_GROUP:
        return None
    meta = doc.get("metadata")
    if not isinstance(meta, CommentedMap) or not isinstance(meta.get("name"), str):
        return None
    namespace = meta.get("namespace") or "default"
    return ObjectKey("VirtualMachine", str(namespace), str(meta["name"]))


def _child_map(parent: CommentedMap, key: str) -> CommentedMap | None:
    value = parent.get(key)
    return value if isinstance(value, CommentedMap) else None


def _pin_vm(
    doc: CommentedMap, key: ObjectKey, ident: Identity, file: str, force: bool
) -> tuple[list[Change], list[Conflict], list[Skip]]:
    changes: list[Change] = []
    conflicts: list[Conflict] = []
    skips: list[Skip] = []
    vm = f"{key.namespace}/{key.name}"
    domain = doc
    for step in ("spec", "template", "spec", "domain"):
        nxt = _child_map(domain, step)
        if nxt is None:
            return (
                [],
                [],
                [Skip(file, vm, f"no {'.'.join(('spec', 'template', 'spec', 'domain'))}")],
            )
        domain = nxt

    def put(parent: CommentedMap, field: str, label: str, stored: str, same: bool) -> None:
        current = parent.get(field)
        if current is not None and same:
            return
        if current is not None and not force:
            conflicts.append(Conflict(file, _line(parent, field), vm, label, str(current), stored))
            return
        parent[field] = DoubleQuotedScalarString(stored)
        changes.append(Change(file, _line(parent, field) or _line(parent), vm, label, stored))

    firmware = _child_map(domain, "firmware")
    if firmware is None:
        firmware = CommentedMap()
        domain["firmware"] = firmware
    fw_uuid = firmware.get("uuid")
    put(firmware, "uuid", "firmware.uuid", ident.uuid,
        isinstance(fw_uuid, str) and fw_uuid.lower() == ident.uuid)  # fmt: skip
    put(firmware, "serial", "firmware.serial", ident.serial, firmware.get("serial") == ident.serial)

    devices = _child_map(domain, "devices")
    interfaces = devices.get("interfaces") if devices is not None else None
    for iface in interfaces if isinstance(interfaces, list) else []:
        if not isinstance(iface, CommentedMap) or not isinstance(iface.get("name"), str):
            continue
        name = iface["name"]
        stored = ident.macs.get(name)
        if stored is None:
            skips.append(Skip(file, vm, f"interface {name}: no stored MAC yet"))
            continue
        current = iface.get("macAddress")
        try:
            same = current is not None and normalize_mac(current, ()) == stored
        except VirtsyncError:
            same = False
        put(iface, "macAddress", f"interfaces[{name}].macAddress", stored, same)
    return changes, conflicts, skips


def edit_file(
    path: Path, display: str, text: str, identities: Mapping[ObjectKey, Identity], force: bool
) -> FileEdit:
    """Pure: the file's new text and the changes, conflicts and skips that led to it."""
    preamble, body = split_preamble(text)
    yaml = _yaml(body)
    docs = list(yaml.load_all(body))
    changes: list[Change] = []
    conflicts: list[Conflict] = []
    skips: list[Skip] = []
    for doc in docs:
        key = _vm_key(doc)
        if key is None:
            continue
        ident = identities.get(key)
        if ident is None:
            skips.append(Skip(display, f"{key.namespace}/{key.name}", "no stored identity"))
            continue
        c, x, s = _pin_vm(doc, key, ident, display, force)
        changes += c
        conflicts += x
        skips += s
    new_text = None
    if changes:
        out = io.StringIO()
        yaml.dump_all(docs, out)
        new_text = preamble + out.getvalue()
    return FileEdit(path, new_text, tuple(changes), tuple(conflicts), tuple(skips))


# -- command --------------------------------------------------------------------


def stored_identities(manifests: Sequence[Manifest],
                      storage: Sequence[str] | None) -> dict[ObjectKey, Identity]:
    stores = [IdentityStore(d) for d in storage_dirs(manifests, storage)]
    # The cluster record (state directory) counts; node stores are its caches.
    cluster = None if storage else IdentityStore(state_dir())
    identities: dict[ObjectKey, Identity] = {}
    for m in manifests:
        if m.kind == "VirtualMachine" and m.group == KUBEVIRT_GROUP:
            ident = (cluster.get(m.key) if cluster else None) or lookup(stores, m.key)
            if ident is not None:
                identities[ObjectKey("VirtualMachine", m.namespace, m.name)] = ident
    return identities


def live_identities(manifests: Sequence[Manifest],
                    args: argparse.Namespace) -> dict[ObjectKey, Identity]:
    """The identity of each VM of the tree as its backend observes it live (rule 18:
    this installation's VMs only)."""
    from reconciler.cli.common import make_backend

    backend = make_backend(manifests, args)
    try:
        observed = backend.observe().objects
    finally:
        backend.close()
    wanted = {m.key for m in manifests if m.kind == "VirtualMachine"}
    return {o.key: Identity(o.identity.uuid, o.identity.serial, dict(o.identity.macs))
            for o in observed if o.key in wanted and o.identity.uuid}


def run(args: argparse.Namespace) -> ExitCode:
    sources, findings = find_yaml_files(args.paths)
    loaded: list[tuple[Path, str, LoadedFile, bytes]] = []
    for src in sources:
        content = read_source(src)
        lf = load_bytes(content, src.display)
        loaded.append((Path(src.absolute), src.display, lf, content))
        findings.extend(lf.findings)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        for f in errors:
            print(f.as_text(), file=sys.stderr)
        print("virtsync pin: nothing written (fix the errors above first)", file=sys.stderr)
        return ExitCode.FAILED

    manifests = [m for _, _, lf, _ in loaded for m in lf.manifests]
    identities = (live_identities(manifests, args) if args.from_cluster
                  else stored_identities(manifests, args.storage_dir))

    edits = [
        edit_file(path, display, content.decode("utf-8"), identities, args.force)
        for path, display, lf, content in loaded
        if any(m.kind == "VirtualMachine" for m in lf.manifests)
    ]
    for e in edits:
        for s in e.skips:
            print(f"{s.file}: {s.vm}: skipped: {s.reason}", file=sys.stderr)
    conflicts = [c for e in edits for c in e.conflicts]
    if conflicts:
        for c in conflicts:
            print(
                f"{c.file}:{c.line}: {c.vm}: {c.field} is pinned to {c.pinned} in git but the "
                f"node stores {c.stored}",
                file=sys.stderr,
            )
        print("virtsync pin: nothing written; pass --force to overwrite those pins",
              file=sys.stderr)  # fmt: skip
        return ExitCode.FINDINGS
    for e in edits:
        if e.new_text is not None:
            write_atomic(e.path, e.new_text.encode("utf-8"),
                         mode=e.path.stat().st_mode & 0o7777)
        for ch in e.changes:
            print(f"{ch.file}:{ch.line}: {ch.vm}: {ch.field} = {ch.value}")
    written = sum(1 for e in edits if e.new_text is not None)
    print(f"virtsync pin: {written} file(s) changed", file=sys.stderr)
    return ExitCode.OK
