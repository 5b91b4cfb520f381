"""cloud-init NoCloud seed: an ISO 9660 image labelled `cidata` with user-data,
meta-data and (optionally) network-config, as KubeVirt's cloudInitNoCloud provides.

meta-data carries `instance-id` = the VM's firmware UUID, so cloud-init sees the same
instance across restarts and recreations (it re-runs per-instance modules only when the
identity really changes). The contents are secret: the file is written with mode 0600,
and nothing here ever puts user or network data into a message.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.core.fsutil import write_atomic_many
from reconciler.core.model import VirtsyncError

VOLUME_LABEL = "cidata"


@dataclass(frozen=True)
class SeedFiles:
    """What goes into the seed, as bytes. Secret: kept out of repr."""

    user_data: bytes = field(repr=False)
    meta_data: bytes = field(repr=False)
    network_config: bytes | None = field(default=None, repr=False)

    def files(self) -> dict[str, bytes]:
        out = {"user-data": self.user_data, "meta-data": self.meta_data}
        if self.network_config is not None:
            out["network-config"] = self.network_config
        return out


def seed_files(
    *, instance_id: str, hostname: str, user_data: str | None, network_data: str | None
) -> SeedFiles:
    """The NoCloud files. An absent userData still gets an (empty) user-data file:
    cloud-init's NoCloud source requires both user-data and meta-data."""
    meta = f"instance-id: {instance_id}\nlocal-hostname: {hostname}\n".encode()
    return SeedFiles(
        user_data=(user_data or "").encode("utf-8"),
        meta_data=meta,
        network_config=network_data.encode("utf-8") if network_data is not None else None,
    )


def _iso_name(name: str) -> str:
    # ISO 9660 level 1 names are 8.3 upper-case; Rock Ridge and Joliet carry the real
    # names that Linux (and cloud-init) see.
    return "/" + name.replace("-", "").upper()[:8] + ".;1"


# Built images by shape (each file's name and size), least recently used first: where the
# file data goes in an ISO depends on the shape only, so a seed of a known shape is that
# image with its files' bytes written in (issue 13: ~20 µs instead of ~2 ms per seed).
_TEMPLATES: OrderedDict[tuple[tuple[str, int], ...], tuple[bytes, tuple[int, ...]]] = \
    OrderedDict()
TEMPLATES_KEPT = 64
TEMPLATE_MAX_BYTES = 1 << 20  # a bigger image is built each time, not kept


def build_iso(seed: SeedFiles) -> bytes:
    """The seed as ISO bytes (Rock Ridge + Joliet, volume label `cidata`): pycdlib's image
    for the seed's shape with the files' bytes written at their extents. Byte for byte
    what pycdlib builds for the seed, except the volume's and directories' recording
    times, which are when the shape was first built in this process."""
    files = seed.files()
    image, offsets = _template(tuple((name, len(data)) for name, data in files.items()))
    out = bytearray(image)
    for offset, data in zip(offsets, files.values(), strict=True):
        out[offset:offset + len(data)] = data
    return bytes(out)


def _template(shape: tuple[tuple[str, int], ...]) -> tuple[bytes, tuple[int, ...]]:
    """The image of a seed of this shape with zeros for its files' bytes, and where each
    file's bytes start in it."""
    hit = _TEMPLATES.get(shape)
    if hit is not None:
        _TEMPLATES.move_to_end(shape)
        return hit
    import pycdlib  # only where a seed is built or read: not every command that reads disks

    image = _pycdlib_image({name: bytes(size) for name, size in shape})
    iso = pycdlib.PyCdlib()
    try:
        iso.open_fp(io.BytesIO(image))
        offsets = tuple(iso.get_record(rr_path="/" + name).extent_location()
                        * iso.logical_block_size for name, _size in shape)
    finally:
        iso.close()
    if len(image) > TEMPLATE_MAX_BYTES:
        return image, offsets
    _TEMPLATES[shape] = (image, offsets)
    while len(_TEMPLATES) > TEMPLATES_KEPT:
        _TEMPLATES.popitem(last=False)
    return image, offsets


def _pycdlib_image(files: dict[str, bytes]) -> bytes:
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_LABEL)
    try:
        for name, data in files.items():
            iso.add_fp(
                io.BytesIO(data),
                len(data),
                _iso_name(name),
                rr_name=name,
                joliet_path="/" + name,
            )
        out = io.BytesIO()
        iso.write_fp(out)
        return out.getvalue()
    finally:
        iso.close()


def read_iso(data: bytes) -> tuple[str, dict[str, bytes]]:
    """(volume label, {Rock Ridge name: content}) of a seed ISO; for comparing and tests."""
    import pycdlib  # only where a seed is built or read: not every command that reads disks

    iso = pycdlib.PyCdlib()
    try:
        iso.open_fp(io.BytesIO(data))
        label = iso.pvd.volume_identifier.decode("ascii", "replace").strip()
        files: dict[str, bytes] = {}
        for child in iso.list_children(rr_path="/"):
            if child.is_dot() or child.is_dotdot() or not child.is_file():
                continue
            name = child.rock_ridge.name().decode("utf-8")
            buf = io.BytesIO()
            iso.get_file_from_iso_fp(buf, rr_path="/" + name)
            files[name] = buf.getvalue()
        return label, files
    except pycdlib.pycdlibexception.PyCdlibException as exc:
        raise VirtsyncError(f"not a readable cloud-init seed ISO: {exc}") from exc
    finally:
        iso.close()


# Seeds this process wrote: path → (inode, size, mtime_ns) after the write, digest of the
# files. A file still carrying that stamp holds those files: no need to read it back.
_WRITTEN: dict[Path, tuple[tuple[int, int, int], bytes]] = {}


def _digest(seed: SeedFiles) -> bytes:
    import hashlib

    h = hashlib.sha256()
    for name, data in seed.files().items():
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.digest()


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _remember(path: Path, seed: SeedFiles) -> None:
    stamp = _stamp(path)
    if stamp is not None:
        _WRITTEN[path] = (stamp, _digest(seed))


def write_seeds(items: Sequence[tuple[Path, SeedFiles]]) -> None:
    """Several seeds as one durable step (issue 13: a batch of new VMs): each file fsync'd
    and renamed into place as `write_seed` does, the fsyncs together
    (fsutil.write_atomic_many), temp files named as `write_seed` names them."""
    for path, _seed in items:
        path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic_many([(path, build_iso(seed), False) for path, seed in items],
                      temp=(".cidata-", ""))
    for path, seed in items:
        _remember(path, seed)


def write_seed(path: str | os.PathLike[str], seed: SeedFiles) -> bool:
    """Write the seed ISO at `path` unless an identical seed is already there.

    Returns True when the file was (re)written. ISO bytes embed creation times, so
    "identical" compares label and file contents, which keeps an unchanged VM at zero
    writes. The write is atomic (temp file in the same directory, then rename).
    """
    target = Path(path)
    known = _WRITTEN.get(target)
    if known is not None and known[0] == _stamp(target) and known[1] == _digest(seed):
        return False  # written by this process with these files, untouched since
    if target.exists():
        try:
            label, files = read_iso(target.read_bytes())
        except VirtsyncError:
            label, files = "", {}
        if label == VOLUME_LABEL and files == seed.files():
            return False
    target.parent.mkdir(parents=True, exist_ok=True)
    data = build_iso(seed)
    fd, tmp = tempfile.mkstemp(prefix=".cidata-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _remember(target, seed)
    return True
