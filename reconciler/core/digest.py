"""The identity of a set of files (or objects): one hash over their sorted digests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def content_hash(items: Iterable[tuple[str, str]]) -> str:
    """sha256 over sorted (path, content digest) pairs: the identity of a set of files."""
    h = hashlib.sha256()
    for path, digest in sorted(items):
        h.update(f"{path}\0{digest}\n".encode())
    return "sha256:" + h.hexdigest()
