"""Can QEMU's user reach the node's directories? Checked when a local qemu:///system node
is opened, before any disk is created.

libvirt's system driver runs QEMU as an unprivileged user (`user` in qemu.conf; Debian's
default is libvirt-qemu) and, with dynamic ownership, hands it the disk files, but never
the directories above them. A storage directory under a parent that user cannot search
(a 0700 temp directory) passes every other step and fails only when the guest starts,
with libvirt's "Permission denied". `blocking_dir` finds the first directory on the way
that stops the search, from the mode bits; a directory carrying a POSIX ACL gets the
benefit of the doubt (its ACL may grant the search).
"""

from __future__ import annotations

import os
import pwd
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

QEMU_CONF = "/etc/libvirt/qemu.conf"
DEFAULT_USER = "libvirt-qemu"  # Debian's build default when qemu.conf leaves `user` unset
_USER = re.compile(r'^\s*user\s*=\s*"([^"]*)"', re.MULTILINE)
_ACL = "system.posix_acl_access"


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gids: frozenset[int]


def is_local_system(uri: str) -> bool:
    """qemu:///system on this host (remote URIs' directories are not visible here)."""
    parts = urlsplit(uri)
    return parts.scheme in ("qemu", "qemu+unix") and not parts.hostname \
        and parts.path == "/system"


def configured_user(conf_text: str | None) -> str:
    """The `user` qemu.conf sets (the last uncommented one), else the default."""
    found = _USER.findall(conf_text or "")
    return found[-1] if found else DEFAULT_USER


def account(name: str) -> Account | None:
    """The account QEMU runs as; None when it does not exist here (nothing to check)."""
    try:
        entry = pwd.getpwuid(int(name[1:])) if name.startswith("+") else pwd.getpwnam(name)
    except (KeyError, ValueError):
        return None
    return Account(entry.pw_name, entry.pw_uid,
                   frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid)))


def qemu_account(conf: str = QEMU_CONF) -> Account | None:
    try:
        text: str | None = Path(conf).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = None
    return account(configured_user(text))


def _can_search(st: os.stat_result, who: Account) -> bool:
    if who.uid == 0:
        return True
    if st.st_uid == who.uid:
        bit = stat.S_IXUSR
    elif st.st_gid in who.gids:
        bit = stat.S_IXGRP
    else:
        bit = stat.S_IXOTH
    return bool(st.st_mode & bit)


def _has_acl(path: Path) -> bool:
    try:
        return _ACL in os.listxattr(path)
    except OSError:
        return False


def blocking_dir(path: str | os.PathLike[str], who: Account) -> tuple[Path, os.stat_result] | None:
    """The first existing directory from / down to `path` (itself included) that `who`
    cannot search, with its stat. Parts that do not exist yet are created later by
    virtsync and are not judged here."""
    target = Path(path).absolute()
    for d in (*reversed(target.parents), target):
        try:
            st = os.stat(d)
        except OSError:
            return None
        if not _can_search(st, who) and not _has_acl(d):
            return d, st
    return None


def describe_blocks(dirs: Iterable[tuple[str, str]], who: Account) -> list[str]:
    """One sentence per (what, path) that `who` cannot reach, naming the directory."""
    out: list[str] = []
    for what, path in dirs:
        found = blocking_dir(path, who)
        if found is None:
            continue
        d, st = found
        owner = _name(st.st_uid)
        out.append(
            f"QEMU's user {who.name} cannot reach the {what} {path}: {d} (mode "
            f"{stat.S_IMODE(st.st_mode):04o}, owner {owner}) does not let it search; "
            f"allow it (e.g. chmod o+x {d}) or move the {what}")
    return out


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
