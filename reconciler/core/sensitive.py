"""Which fields hold secrets, and how to keep their values out of every output.

Safety rule 10: cloud-init userData/networkData, anything under a secret reference and
password-like keys never appear in plans, diffs, logs or error messages.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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


@lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    # Cached: manifests reuse a few hundred key names, and the regex ran once per key per
    # node per VM (the hottest line of a host-mode plan). Bounded so odd keys can't grow it.
    return key in _SECRET_KEYS or bool(_SECRET_KEY_PATTERN.search(key))


def _secret(key: object) -> bool:
    # YAML can give non-string keys (1: x); they name no secret, as in is_sensitive_path.
    return isinstance(key, str) and is_sensitive_key(key)


def is_sensitive_path(path: Sequence[str | int]) -> bool:
    """True when the value at `path` (or any ancestor) is sensitive."""
    return any(isinstance(p, str) and is_sensitive_key(p) for p in path)


def redact(value: JSON, path: Sequence[str | int] = ()) -> JSON:
    """A copy of `value` with every sensitive subtree replaced by MASK."""
    return MASK if is_sensitive_path(path) else _redact_below(value)


def _redact_below(value: JSON) -> JSON:
    # The path above is known not sensitive, so only each new key needs checking.
    if isinstance(value, dict):
        return {k: MASK if _secret(k) else _redact_below(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_below(v) for v in value]
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
    return sensitive_digest(value) if is_sensitive_path(path) else _digest_below(value)


def _digest_below(value: JSON) -> JSON:
    # As _redact_below: one cached key check per dict entry instead of re-scanning the path.
    if isinstance(value, dict):
        return {k: sensitive_digest(v) if _secret(k) else _digest_below(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_digest_below(v) for v in value]
    return value
