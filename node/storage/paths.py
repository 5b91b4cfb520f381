"""Path confinement for node storage: every disk file lives inside a known directory.

Safety rule 9: disk paths resolve inside the node's storage directory (base images and
kernels inside its image directory). A path is checked after resolving symlinks and
`..`, and a qcow2 image is walked level by level along its backing chain (and external
data file) *before* anything follows it, so a crafted image cannot make QEMU open a
file elsewhere on the host. Formats are always stated explicitly to qemu-img: probing a
guest-writable raw disk would let the guest forge a qcow2 header.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.core.model import VirtsyncError

# Names that become single path components: Kubernetes DNS-1123 names (lower-case,
# digits, '-', '.'), never '.', '..' or anything with a slash.
_COMPONENT = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
KNOWN_FORMATS = frozenset({"qcow2", "raw"})
# "json:{...}", "nbd://", "http:" ...: QEMU reads these as protocols, not as file names.
_PROTOCOL = re.compile(r"^[A-Za-z0-9+.-]+:")
MAX_CHAIN = 16


class UnsafePath(VirtsyncError):
    """A path (or an image's backing file) resolves outside the directory it must stay in."""


def safe_component(name: str, what: str) -> str:
    """Return `name` if it can be used as one file-name component, else refuse."""
    if not isinstance(name, str) or len(name) > 253 or not _COMPONENT.match(name) or ".." in name:
        raise UnsafePath(f"{what} {name!r} cannot be used as a file name (want a DNS-1123 name)")
    return name


def is_within(path: Path, root: Path) -> bool:
    """True when resolved `path` is `root` or below it (both resolved by the caller)."""
    return path == root or root in path.parents


def confine(root: str | os.PathLike[str], candidate: str | os.PathLike[str], what: str) -> Path:
    """Resolve `candidate` (absolute, or relative to `root`) and refuse it unless it stays
    inside `root` once symlinks and `..` are resolved. The file need not exist yet."""
    base = Path(root).resolve()
    raw = Path(candidate)
    if "\x00" in str(raw):
        raise UnsafePath(f"{what}: path contains a NUL byte")
    full = (raw if raw.is_absolute() else base / raw).resolve()
    if not is_within(full, base) or full == base:
        raise UnsafePath(f"{what}: {candidate} resolves to {full}, outside {base}")
    return full


@dataclass(frozen=True)
class ImageInfo:
    """One level of a disk image as qemu-img reports it (format as stated, not probed)."""

    path: str
    format: str
    virtual_size: int
    backing_file: str | None
    backing_format: str | None
    data_file: str | None


def image_info(path: str | os.PathLike[str], fmt: str | None) -> ImageInfo:
    """qemu-img info for one file, without following its backing chain.

    `fmt=None` probes the format; only do that for operator-provided base images, never
    for files a guest could have written.
    """
    argv = ["qemu-img", "info", "--output=json", "-U"]
    if fmt is not None:
        if fmt not in KNOWN_FORMATS:
            raise VirtsyncError(f"{path}: unsupported disk format {fmt!r}")
        argv += ["-f", fmt]
    argv.append(str(path))
    import subprocess  # only where qemu-img runs: not a no-op (issue 13)

    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VirtsyncError(f"{path}: qemu-img info failed: {exc}") from exc
    if done.returncode != 0:
        raise VirtsyncError(f"{path}: qemu-img info failed: {done.stderr.strip()}")
    data: dict[str, Any] = json.loads(done.stdout)
    specific = data.get("format-specific", {}).get("data", {})
    data_file = specific.get("data-file") if isinstance(specific, dict) else None
    return ImageInfo(
        path=str(path),
        format=str(data.get("format")),
        virtual_size=int(data.get("virtual-size", 0)),
        backing_file=data.get("full-backing-filename") or data.get("backing-filename"),
        backing_format=data.get("backing-filename-format"),
        data_file=data_file if isinstance(data_file, str) else None,
    )


def checked_chain(
    path: str | os.PathLike[str],
    fmt: str,
    roots: Sequence[str | os.PathLike[str]],
    what: str,
    *,
    top: ImageInfo | None = None,
) -> tuple[ImageInfo, ...]:
    """Walk an image's backing chain from the top, refusing any level (or qcow2 external
    data file) that resolves outside `roots`, a backing file without a recorded format,
    or a chain longer than MAX_CHAIN. Returns the levels, top first. `top`: the top
    level's info when the caller already has it (saves one qemu-img run)."""
    bases = [Path(r).resolve() for r in roots]

    def inside(p: Path) -> bool:
        return any(is_within(p, b) for b in bases)

    levels: list[ImageInfo] = []
    current: Path = Path(path).resolve()
    current_fmt = fmt
    roots_text = ", ".join(map(str, bases))
    while True:
        if not inside(current):
            raise UnsafePath(f"{what}: {current} is outside {roots_text}")
        info = top if top is not None and not levels else image_info(current, current_fmt)
        levels.append(info)
        for ref in (info.backing_file, info.data_file):
            if ref is not None and _PROTOCOL.match(ref):
                raise UnsafePath(f"{what}: {current} refers to {ref!r}, not a plain file")
        if info.data_file is not None:
            data = (current.parent / info.data_file).resolve()
            if not inside(data):
                raise UnsafePath(f"{what}: data file {data} of {current} is outside {roots_text}")
        if info.backing_file is None:
            return tuple(levels)
        if len(levels) >= MAX_CHAIN:
            raise UnsafePath(f"{what}: backing chain of {path} is longer than {MAX_CHAIN}")
        if info.backing_format not in KNOWN_FORMATS:
            raise UnsafePath(
                f"{what}: {current} has backing file {info.backing_file} without a stated "
                "qcow2/raw backing format; refusing to let QEMU probe it"
            )
        nxt = Path(info.backing_file)
        current = (nxt if nxt.is_absolute() else current.parent / nxt).resolve()
        current_fmt = info.backing_format
