"""Durable VM identity per node storage directory: firmware UUID and serial, interface
MACs, disk serials.

Identity is generated once, persisted, and never derived from a name or regenerated:
it must survive stop/start, undefine + define (restart-class changes), adding or
removing other disks and NICs, node agent restarts, and loss of the libvirt definition.
So it lives in the node's storage directory, next to the disks it belongs to, not in
libvirt:

    <storageDir>/.virtsync-identity/<namespace>/<name>.json    one record per VM
    <storageDir>/.virtsync-identity/.lock                      filelock for the store

(A leading dot cannot start a Kubernetes namespace, so the directory never collides
with per-namespace disk folders.) Records are written atomically: temp file in the same
directory, fsync, rename, fsync of the directory. A record that cannot be read is an
error for its own VM, never a reason to generate a new identity, and never an error for
the node's other VMs (their MAC allocation skips it).

Allocation rules (see docs/identity.md):
- firmware UUID: random (uuid4) unless pinned in spec.domain.firmware.uuid.
- firmware serial: 20 random hex digits unless pinned in firmware.serial.
- MACs: per interface *name*, locally administered unicast `02:xx:xx:xx:xx:xx` with
  40 random bits, unique within the store and against the MACs pinned in the spec
  (plus any `reserved_macs` the caller knows from the rest of the tree).
- disk serials: per disk *name*, 20 random hex digits (virtio-blk's limit is 20).
Entries for interfaces/disks that left the spec are kept, so removing and re-adding a
NIC gives it its old MAC back and its MAC is never handed to another VM.

A value pinned in git wins. A pin that contradicts the stored value (or a MAC another
VM in the store owns) is refused with VirtsyncError unless `force=True`, which adopts
the pin.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from reconciler.core.flock import FileLock, LockTimeout
from reconciler.core.fsutil import fsync_dir, write_atomic, write_atomic_many
from reconciler.core.model import ObjectKey, VirtsyncError
from reconciler.core.vmspec import VmSpec

STORE_DIRNAME = ".virtsync-identity"
RECORD_VERSION = 1
LOCK_TIMEOUT_SECONDS = 30.0

# Kubernetes object names: DNS-1123 subdomain (namespace: label). Checked again here
# because they become file names.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(sorted(mapping.items())))


@dataclass(frozen=True, eq=True)
class Identity:
    """The stable identity of one VM. `macs` maps interface name → MAC (lower-case,
    colon-separated); `disk_serials` maps disk name → serial."""

    uuid: str
    serial: str
    macs: Mapping[str, str] = field(default_factory=dict)
    disk_serials: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Read-only views, so a caller cannot mutate a stored identity by accident.
        object.__setattr__(self, "macs", _frozen(self.macs))
        object.__setattr__(self, "disk_serials", _frozen(self.disk_serials))

    __hash__ = None  # type: ignore[assignment]  # holds mappings

    def to_json(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "serial": self.serial,
            "macs": dict(self.macs),
            "diskSerials": dict(self.disk_serials),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str) -> Identity:
        try:
            uuid = data["uuid"]
            serial = data["serial"]
            macs = data.get("macs", {})
            serials = data.get("diskSerials", {})
            ok = (
                isinstance(uuid, str)
                and isinstance(serial, str)
                and isinstance(macs, dict)
                and isinstance(serials, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in macs.items())
                and all(isinstance(k, str) and isinstance(v, str) for k, v in serials.items())
            )
        except (KeyError, TypeError) as exc:
            raise VirtsyncError(f"{where}: identity record is malformed ({exc})") from exc
        if not ok:
            raise VirtsyncError(f"{where}: identity record is malformed (wrong value types)")
        return cls(uuid=uuid, serial=serial, macs=macs, disk_serials=serials)


def new_uuid() -> str:
    import uuid as uuidlib  # here, not at start-up: uuid imports platform (issue 13)

    return str(uuidlib.uuid4())


def new_serial() -> str:
    return secrets.token_hex(10).upper()


def new_mac() -> str:
    """A random locally administered unicast MAC: first octet 0x02 (U/L bit set,
    I/G bit clear), 40 random bits."""
    return "02:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))


@dataclass(frozen=True)
class Conflict:
    """A pin in git that disagrees with what the store holds."""

    field: str  # 'firmware.uuid', 'firmware.serial', 'interfaces[eth0].macAddress', ...
    pinned: str
    stored: str
    owner: str | None = None  # another VM holding the value, when that is the conflict

    def describe(self) -> str:
        if self.owner:
            return f"{self.field}: pinned {self.pinned} is already used by {self.owner}"
        return f"{self.field}: pinned {self.pinned} contradicts stored {self.stored}"


GENERATION_FILE = ".generation"


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """A record file's (inode, size, mtime): a cached parse stands while it is unchanged."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class IdentityStore:
    """Identity records of all VMs on one node storage directory."""

    def __init__(self, storage_dir: str | os.PathLike[str]) -> None:
        self.storage_dir = Path(storage_dir)
        self.root = self.storage_dir / STORE_DIRNAME
        self._lock = FileLock(str(self.root / ".lock"), timeout=LOCK_TIMEOUT_SECONDS)
        self._cache: dict[Path, tuple[tuple[int, int, int], Identity]] = {}
        # key → its record's path, checked once (issue 13: joining and checking it took
        # a third of a new VM's allocation, which looks it up four times or more)
        self._paths: dict[ObjectKey, Path] = {}
        # MAC → owner ("ns/name") of every record, valid while the store's generation file
        # still holds `_index_gen`: every write bumps it, so a write by another process
        # (or another IdentityStore object) is noticed and the index rebuilt. Without
        # it, allocating N VMs would read N records each time: O(N²).
        self._index: dict[str, str] | None = None
        self._index_gen: str | None = None
        self._index_lower = True  # every MAC in `_index` is lower-case (as virtsync writes them)
        # owner → the MACs `_index` got from its record: a write updates only those (a scan
        # of the whole index per write cost O(N²) over a 10,000-VM start-up, issue 13)
        self._owned: dict[str, list[str]] = {}
        # Inside `transaction()`: records written but not yet on disk (path → identity,
        # whether its directory entry must be durable); None outside one.
        self._pending: dict[Path, tuple[Identity, bool]] | None = None

    # -- reading ---------------------------------------------------------------

    def record_path(self, key: ObjectKey) -> Path:
        known = self._paths.get(key)
        if known is not None:
            return known
        for part, what in ((key.namespace, "namespace"), (key.name, "name")):
            if not _NAME.match(part) or len(part) > 253:
                raise VirtsyncError(f"{key}: {what} {part!r} is not a valid object name")
        path = self._paths[key] = self.root / key.namespace / f"{key.name}.json"
        return path

    def get(self, key: ObjectKey) -> Identity | None:
        """The stored identity, or None when the VM has none yet."""
        return self._load(self.record_path(key))

    def items(self) -> Iterator[tuple[ObjectKey, Identity]]:
        """Every readable stored identity, sorted by namespace and name (corrupt records
        are left out: see `get`)."""
        if not self.root.is_dir():
            return
        for ns_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for path in sorted(ns_dir.glob("*.json")):
                try:
                    ident = self._read_cached(path)
                except VirtsyncError:
                    # A corrupt record fails only its own VM (get/ensure refuse it, naming
                    # the file); every other VM of the node is still allocated and checked.
                    continue
                if ident is not None:
                    yield ObjectKey("VirtualMachine", ns_dir.name, path.stem), ident

    def _read_cached(self, path: Path) -> Identity | None:
        """`_read`, reusing the parse while the file's inode, size and mtime are unchanged
        (allocation scans every record; a long-lived agent should not re-parse them)."""
        stamp = _stamp(path)
        if stamp is None:
            return None
        hit = self._cache.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        ident = self._read(path)
        if ident is not None:
            self._cache[path] = (stamp, ident)
        return ident

    def _load(self, path: Path) -> Identity | None:
        """The record at `path`: a write pending in this transaction, else `_read_cached`
        (issue 13: a 10,000-VM start-up read and parsed each new record three more times
        between writing it and defining its domain)."""
        if self._pending is not None and path in self._pending:
            return self._pending[path][0]
        return self._read_cached(path)

    def _remember(self, path: Path, ident: Identity) -> None:
        """After writing `ident` to `path` under the lock: what reading it back would give,
        kept under the file's new stamp (the next read of that file is a stat)."""
        stamp = _stamp(path)
        if stamp is not None:
            self._cache[path] = (stamp, ident)

    def _read(self, path: Path) -> Identity | None:
        if self._pending is not None and path in self._pending:
            return self._pending[path][0]
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise VirtsyncError(f"{path}: cannot read identity record: {exc.strerror}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise VirtsyncError(
                f"{path}: identity record is not valid JSON (line {exc.lineno}); "
                "refusing to generate a new identity over it"
            ) from exc
        if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
            raise VirtsyncError(f"{path}: identity record has an unknown version")
        return Identity.from_json(data, str(path))

    # -- writing ---------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            with self._lock:
                yield
        except LockTimeout as exc:
            raise VirtsyncError(
                f"{self.root}/.lock: identity store is locked by another process "
                f"(waited {LOCK_TIMEOUT_SECONDS:.0f}s)"
            ) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Several writes as one durable step (issue 13: one apply batch's new VMs): under
        the lock for the whole block, every record written inside is read back from memory
        and, when the block ends, they are all made durable together (fsutil.
        write_atomic_many: each file fsync'd, renamed, each directory fsync'd once) before
        this returns. Same files and guarantees as writing them one by one; if the block
        raises, none of them is written."""
        with self.locked():
            self._current_index()  # from disk, before anything is pending
            self._pending = {}
            try:
                yield
            except BaseException:
                self._index, self._index_gen = None, None  # it names unwritten records
                raise
            finally:
                pending, self._pending = self._pending, None
            if pending:
                write_atomic_many([(path, _record_bytes(ident), durable)
                                   for path, (ident, durable) in pending.items()])
                for path, (ident, _durable) in pending.items():
                    self._remember(path, ident)
                self._index_gen = self._new_generation()

    def ensure(
        self,
        key: ObjectKey,
        vm: VmSpec,
        *,
        force: bool = False,
        reserved_macs: Collection[str] = (),
    ) -> Identity:
        """The VM's identity, allocating what is missing and honouring pins from the spec.

        Writes only when something changed, so a converged VM costs no write.
        Raises VirtsyncError listing every conflicting pin unless `force`.
        """
        path = self.record_path(key)
        with self.locked():
            stored = self._load(path)
            # Fast path: nothing to allocate and every pin agrees, so no other VM's
            # record has to be read (pins equal to stored values were checked when
            # they were first stored).
            if stored is not None:  # (a new VM has nothing stored to agree with)
                ident, conflicts = _merge(key, vm, stored, {}, reserved_macs, force=force)
                if ident == stored and not conflicts:
                    return stored
            others = self._macs_of_others(key)
            ident, conflicts = _merge(key, vm, stored, others, reserved_macs, force=force)
            if conflicts:
                lines = "; ".join(c.describe() for c in conflicts)
                raise VirtsyncError(
                    f"{key}: identity pinned in git contradicts the node's identity store "
                    f"({path}): {lines}. Fix the pin, or pass --force to adopt it"
                )
            if ident != stored:
                self._write(path, ident)
            return ident

    def ensure_many(self, wanted: Sequence[tuple[ObjectKey, VmSpec]]) -> dict[ObjectKey, Identity]:
        """`ensure` for each VM, in one transaction (one durable step for all); their
        identities. A VM whose ensure fails is left out: its own `ensure` will report it."""
        out: dict[ObjectKey, Identity] = {}
        with self.transaction():
            for key, vm in wanted:
                with contextlib.suppress(VirtsyncError):
                    out[key] = self.ensure(key, vm)
        return out

    def put(self, key: ObjectKey, ident: Identity, *, copy: bool = False) -> None:
        """Store `ident` as is (import/restore). Use `ensure` for normal allocation.

        `copy=True`: a copy of a record kept durably elsewhere (a node's cache of the
        cluster record, node.identity.cluster_store): its directory is not fsync'd, since a
        rename lost in a power cut leaves the old copy or none, and the next `ensure`
        writes it again from the durable record. The file itself is still fsync'd: an
        empty record would count as corrupt and stop its VM (rule 17)."""
        path = self.record_path(key)
        with self.locked():
            self._write(path, ident, durable_dir=not copy)

    def move(self, old: ObjectKey, new: ObjectKey) -> Identity | None:
        """Carry a renamed VM's identity over to its new key (rule 17): the record is
        written under `new`, then removed under `old`, under the lock, so a crash leaves
        it under one key or both (then `new` wins at the next move). Idempotent: a record
        already under `new` only is left there. None when neither key has one."""
        src, dst = self.record_path(old), self.record_path(new)
        assert self._pending is None, "not inside a transaction"
        with self.locked():
            ident = self._read(src)
            if ident is None:
                return self._read(dst)
            moved = self._read(dst)
            if moved is not None and moved != ident:
                raise VirtsyncError(f"{new}: cannot carry over the identity of {old}: "
                                    f"{dst} already holds a different one")
            if moved is None:
                self._write(dst, ident)
            src.unlink()
            fsync_dir(src.parent)
            self._bump(f"{old.namespace}/{old.name}", ())
            return ident

    def forget(self, key: ObjectKey) -> bool:
        """Remove the VM's identity. Only for an explicit delete whose policy allows it:
        a forgotten identity can never be recovered from the store."""
        assert self._pending is None, "not inside a transaction"
        path = self.record_path(key)
        with self.locked():
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            fsync_dir(path.parent)
            self._bump(f"{key.namespace}/{key.name}", ())
            return True

    def macs_of_others(self, key: ObjectKey) -> Mapping[str, str]:
        """MAC → owning VM ("ns/name") for every readable record except `key`'s."""
        return self._macs_of_others(key)

    def lower_case_macs_of_others(self, key: ObjectKey) -> Collection[str] | None:
        """`macs_of_others` as a membership view when every stored MAC is lower-case (then
        no caller needs to copy and lower-case them), else None."""
        others = self._macs_of_others(key)
        return others if self._index_lower else None

    def _macs_of_others(self, key: ObjectKey) -> Mapping[str, str]:
        """MAC → owning VM for every VM in the store except `key`."""
        index = self._current_index()
        return _Excluding(index, f"{key.namespace}/{key.name}")

    def _generation(self) -> str:
        try:
            return (self.root / GENERATION_FILE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return ""

    def _current_index(self) -> dict[str, str]:
        if self._pending is not None and self._index is not None:
            return self._index  # in a transaction: we hold the lock; `_bump` keeps it
        generation = self._generation()
        if self._index is None or generation != self._index_gen:
            index: dict[str, str] = {}
            owned: dict[str, list[str]] = {}
            for other, ident in self.items():
                owner = f"{other.namespace}/{other.name}"
                owned[owner] = list(ident.macs.values())
                for mac in ident.macs.values():
                    index[mac] = owner
            self._index, self._index_gen, self._owned = index, generation, owned
            self._index_lower = all(m == m.lower() for m in index)
        return self._index

    def _bump(self, owner: str, macs: Collection[str]) -> None:
        """After a write (under the lock): new generation; keep our index if it was current."""
        if self._pending is not None and self._index is not None:
            generation = self._index_gen or ""  # written once when the transaction ends
        else:
            was_current = self._index is not None and self._index_gen == self._generation()
            generation = self._new_generation()
            if not was_current:
                self._index = None
        if self._index is None:
            self._index, self._index_gen = None, None
            return
        for mac in self._owned.pop(owner, ()):
            if self._index.get(mac) == owner:
                del self._index[mac]
        self._index.update(dict.fromkeys(macs, owner))
        self._owned[owner] = list(macs)
        self._index_lower = self._index_lower and all(m == m.lower() for m in macs)
        self._index_gen = generation

    def _new_generation(self) -> str:
        import uuid as uuidlib  # see new_uuid

        generation = uuidlib.uuid4().hex
        # No fsync (issue 13: one less per identity write): the generation only tells live
        # processes that their MAC index is stale; after a power cut none survives, and an
        # empty or old file just makes the next process build its index anew.
        write_atomic(self.root / GENERATION_FILE, (generation + "\n").encode(), sync=False)
        return generation

    def _write(self, path: Path, ident: Identity, *, durable_dir: bool = True) -> None:
        if self._pending is not None:
            self._pending[path] = (ident, durable_dir)  # on disk when the transaction ends
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, _record_bytes(ident), durable_dir=durable_dir)
            self._remember(path, ident)
        self._bump(f"{path.parent.name}/{path.stem}", ident.macs.values())


def _record_bytes(ident: Identity) -> bytes:
    payload = {"version": RECORD_VERSION, **ident.to_json()}
    return (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode("utf-8")


class LowerCaseMacs(Collection[str]):
    """Several MAC collections, every member lower-case, tested by membership without
    copying them: `ensure` of a node's VM reserves the node's whole MAC index, and a copy
    per VM cost O(N²) over a 10,000-VM start-up (issue 13)."""

    def __init__(self, *parts: Collection[str]) -> None:
        self._parts = parts

    def __contains__(self, mac: object) -> bool:
        return any(mac in part for part in self._parts)

    def __iter__(self) -> Iterator[str]:
        return (m for part in self._parts for m in part)

    def __len__(self) -> int:
        return sum(len(part) for part in self._parts)


class _Excluding(Mapping[str, str]):
    """A read-only view of a MAC index without one owner's own MACs."""

    def __init__(self, index: Mapping[str, str], owner: str) -> None:
        self._index = index
        self._owner = owner

    def __getitem__(self, mac: str) -> str:
        owner = self._index[mac]
        if owner == self._owner:
            raise KeyError(mac)
        return owner

    def __contains__(self, mac: object) -> bool:
        return self._index.get(mac) not in (None, self._owner) if isinstance(mac, str) else False

    def __iter__(self) -> Iterator[str]:
        return (m for m, o in self._index.items() if o != self._owner)

    def __len__(self) -> int:
        return sum(1 for o in self._index.values() if o != self._owner)


@dataclass
class _Picker:
    """Chooses each identity value: a pin wins, else the stored value, else a fresh one; a
    pin that differs from the stored value is a conflict unless forced."""

    force: bool
    conflicts: list[Conflict] = field(default_factory=list)

    def pick(self, fieldname: str, pinned: str | None, old: str | None, fresh: str) -> str:
        if pinned is not None:
            if old is not None and old != pinned and not self.force:
                self.conflicts.append(Conflict(fieldname, pinned, old))
            return pinned
        return old if old is not None else fresh


def _merge(
    key: ObjectKey,
    vm: VmSpec,
    stored: Identity | None,
    other_macs: Mapping[str, str],
    reserved_macs: Collection[str],
    *,
    force: bool,
) -> tuple[Identity, list[Conflict]]:
    """Pure core of `ensure`: stored identity + pins → new identity and conflicts."""
    picker = _Picker(force)
    uuid = picker.pick(
        "firmware.uuid", vm.firmware.uuid, stored.uuid if stored else None, new_uuid()
    )
    serial = picker.pick(
        "firmware.serial", vm.firmware.serial, stored.serial if stored else None, new_serial()
    )
    macs = _merge_macs(
        key, vm, dict(stored.macs) if stored else {}, other_macs, reserved_macs, picker
    )
    serials = dict(stored.disk_serials) if stored else {}
    for disk in vm.disks:
        serials[disk.name] = picker.pick(
            f"disks[{disk.name}].serial", disk.serial, serials.get(disk.name), new_serial()
        )
    return Identity(uuid=uuid, serial=serial, macs=macs, disk_serials=serials), picker.conflicts


def _merge_macs(
    key: ObjectKey,
    vm: VmSpec,
    macs: dict[str, str],
    other_macs: Mapping[str, str],
    reserved_macs: Collection[str],
    picker: _Picker,
) -> dict[str, str]:
    """Interface MACs: pins first (checked against other VMs and this VM's other
    interfaces), then a fresh MAC, unique cluster-wide, for each interface without one."""
    pinned_macs = {i.name: i.mac for i in vm.interfaces if i.mac is not None}
    pinned_values = set(pinned_macs.values())
    for name, mac in pinned_macs.items():
        fieldname = f"interfaces[{name}].macAddress"
        if mac in other_macs and not picker.force:
            picker.conflicts.append(Conflict(fieldname, mac, mac, owner=other_macs[mac]))
        holder = next((n for n, m in macs.items() if m == mac and n != name), None)
        if holder is not None and not picker.force:
            picker.conflicts.append(
                Conflict(
                    fieldname, mac, mac, owner=f"{key.namespace}/{key.name} interface {holder}"
                )
            )
        macs[name] = picker.pick(fieldname, mac, macs.get(name), mac)
    in_spec = {i.name for i in vm.interfaces}
    for name in [n for n, m in macs.items() if n not in in_spec and m in pinned_values]:
        del macs[name]  # a forced pin took this MAC from an interface that left the spec
    reserved = reserved_macs if isinstance(reserved_macs, LowerCaseMacs) \
        else {m.lower() for m in reserved_macs}

    def taken(mac: str) -> bool:
        return mac in other_macs or mac in reserved or mac in pinned_values \
            or mac in macs.values()

    for iface in vm.interfaces:
        if iface.name in pinned_macs:
            continue
        current = macs.get(iface.name)
        # Keep the stored MAC unless a (forced) pin moved it to another interface.
        if current is not None and current not in pinned_values:
            continue
        mac = new_mac()
        while taken(mac):
            mac = new_mac()
        macs[iface.name] = mac
    return macs
