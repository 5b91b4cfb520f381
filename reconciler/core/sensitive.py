"""Which fields hold secrets, and how to keep their values out of every output.

Safety rule 10: cloud-init userData/networkData, anything under a secret reference and
password-like keys never appear in plans, diffs, logs or error messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache

from reconciler.core.model import JSON

MASK = "(sensitive)"

# Keys whose value is always secret, wherever they appear.
_SECRET_KEYS = frozenset(
    {"userData", "userDataBase64", "networkData", "networkDataBase64"}
)
# Keys whose whole subtree is secret (credentials, secret references, password-like).
_SECRET_KEY_PATTERN = re.compile(
    r"(?i)(password|passwd|passphrase|secret|token|credential|private_?key|accesskey|ssh_?key)"
)


@lru_cache(maxsize=4096)  # a tree repeats the same few hundred keys (issue 13)
def is_sensitive_key(key: str) -> bool:
    return key in _SECRET_KEYS or bool(_SECRET_KEY_PATTERN.search(key))


def is_sensitive_path(path: Sequence[str | int]) -> bool:
    """True when the value at `path` (or any ancestor) is sensitive."""
    return any(isinstance(p, str) and is_sensitive_key(p) for p in path)


def redact(value: JSON, path: Sequence[str | int] = ()) -> JSON:
    """A copy of `value` with every sensitive subtree replaced by MASK."""
    return MASK if is_sensitive_path(path) else _below(value, _mask)


def _mask(value: JSON) -> JSON:
    return MASK


def _below(value: JSON, hide: Callable[[JSON], JSON]) -> JSON:
    """`value`, whose path is known not to be sensitive, with every sensitive subtree
    replaced by `hide` of it: one key test per node, not one per ancestor."""
    if isinstance(value, dict):
        return {k: hide(v) if isinstance(k, str) and is_sensitive_key(k) else _below(v, hide)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_below(v, hide) for v in value]  # an index is never sensitive
    return value


def show_value(value: JSON, path: Sequence[str | int]) -> str:
    """A short, safe rendering of a value for a message."""
    if is_sensitive_path(path):
        return MASK
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 80 else text[:77] + "..."


def sensitive_digest(value: JSON) -> str:
    """A stable stand-in for a secret: lets live state be compared without holding it."""
    import hashlib
    import json

    raw = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def digest_sensitive(value: JSON, path: Sequence[str | int] = ()) -> JSON:
    """A copy of `value` with every sensitive subtree replaced by its `sensitive_digest`.

    Backends store and return specs in this form; the planner applies the same function to
    the desired side, so equal secrets compare equal and changed ones differ."""
    if is_sensitive_path(path):
        return sensitive_digest(value)
    return _below(value, sensitive_digest)


def digest_sensitive_shared(value: JSON) -> JSON:
    """`digest_sensitive(value)` for a caller that never mutates the result: a subtree
    holding no secret is `value`'s own object, not a copy. A long-lived planner keeps
    one per desired object (issue 13: watch at 10,000 VMs), so copies would double the
    tree's memory."""
    if isinstance(value, dict):
        out = None
        for k, v in value.items():
            new = sensitive_digest(v) if isinstance(k, str) and is_sensitive_key(k) \
                else digest_sensitive_shared(v)
            if new is not v:
                if out is None:
                    out = dict(value)
                out[k] = new
        return value if out is None else out
    if isinstance(value, list):
        items = [digest_sensitive_shared(v) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value
