"""Map a JSON path inside a document back to its line and column in the file.

Only failing files pay for this: the fast loader keeps no positions, so the file is
re-read once in ruamel.yaml's round-trip mode (which records the line/column of every
key and item) and the path is walked there. Results are 1-based.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError


@lru_cache(maxsize=64)
def _documents(text: str) -> tuple[Any, ...]:
    yaml = YAML(typ="rt")
    # Same reading of scalars as the fast loader (YAML 1.1, like kubectl).
    yaml.version = (1, 1)
    yaml.allow_duplicate_keys = True
    try:
        with warnings.catch_warnings():
            # ruamel's YAML 1.1 float warnings are about style, not position: not for users.
            warnings.simplefilter("ignore")
            return tuple(yaml.load_all(io.StringIO(text)))
    except (YAMLError, ValueError, RecursionError):
        return ()


def _start(node: Any) -> tuple[int, int] | None:
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return None
    return (lc.line + 1, lc.col + 1)


def locate(text: str, doc: int, path: Sequence[str | int]) -> tuple[int, int]:
    """Line and column of the node at `path` in document `doc` of `text`.

    A final mapping key resolves to the key's own position (where an operator looks for a
    field); a list index to the item's position. When the path cannot be followed to the
    end, the deepest node reached is returned, and (1, 1) when nothing is known.
    """
    docs = _documents(text)
    if doc >= len(docs):
        return doc_start(text, doc)
    node: Any = docs[doc]
    best = _start(node) or doc_start(text, doc)
    for part in path:
        if isinstance(node, CommentedMap) and isinstance(part, str) and part in node:
            if part in (node.lc.data or ()):  # a key merged in by `<<:` has no position of its own
                line, col = node.lc.key(part)
                best = (line + 1, col + 1)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line, col = node.lc.item(part)
            best = (line + 1, col + 1)
            node = node[part]
        else:
            break
    return best


def doc_start(text: str, doc: int) -> tuple[int, int]:
    """Best-effort first content line of document `doc` (used when it cannot be parsed)."""
    index = 0
    seen_content = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if line.startswith("---"):
            if seen_content:
                index += 1
                seen_content = False
            rest = line[3:].strip()
            if rest and not rest.startswith("#") and index == doc:
                return (number, 1)
            continue
        if not stripped or stripped.startswith("#") or line.startswith("%"):
            continue
        if index == doc:
            return (number, 1)
        seen_content = True
    return (1, 1)
