"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902) for the Kubernetes API model."""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError

JSON = dict[str, Any]


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _unprocessable(message: str) -> ApiError:
    return ApiError(422, "Invalid", message)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _unprocessable(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> Any:
    node = doc
    for part in parts[:-1]:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError) as err:
            raise _unprocessable(f"doc is missing path: /{'/'.join(parts)}") from err
    return node


def _get(doc: Any, parts: list[str]) -> Any:
    if not parts:
        return doc
    parent = _parent(doc, parts)
    try:
        return parent[int(parts[-1])] if isinstance(parent, list) else parent[parts[-1]]
    except (KeyError, IndexError, ValueError, TypeError) as err:
        raise _unprocessable(f"doc is missing path: /{'/'.join(parts)}") from err


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _parent(doc, parts)
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if index > len(parent):
            raise _unprocessable(f"index out of range: /{'/'.join(parts)}")
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise _unprocessable(f"doc is missing path: /{'/'.join(parts)}")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent = _parent(doc, parts)
    try:
        if isinstance(parent, list):
            parent.pop(int(parts[-1]))
        else:
            del parent[parts[-1]]
    except (KeyError, IndexError, ValueError, TypeError) as err:
        raise _unprocessable(f"doc is missing path: /{'/'.join(parts)}") from err
    return doc


def json_patch(doc: JSON, ops: Any) -> JSON:
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "json patch must be a list of operations")
    out: Any = copy.deepcopy(doc)
    for op in ops:
        kind, parts = op.get("op"), _pointer(op.get("path", ""))
        if kind == "add":
            out = _add(out, parts, copy.deepcopy(op["value"]))
        elif kind == "remove":
            out = _remove(out, parts)
        elif kind == "replace":
            _get(out, parts)
            out = _add(_remove(out, parts), parts, copy.deepcopy(op["value"])) if parts \
                else copy.deepcopy(op["value"])
        elif kind == "test":
            if _get(out, parts) != op.get("value"):
                raise _unprocessable(f"testing value /{'/'.join(parts)} failed")
        elif kind in ("move", "copy"):
            source = _pointer(op["from"])
            value = copy.deepcopy(_get(out, source))
            if kind == "move":
                out = _remove(out, source)
            out = _add(out, parts, value)
        else:
            raise _unprocessable(f"unexpected kind of json patch operation: {kind!r}")
    if not isinstance(out, dict):
        raise _unprocessable("json patch must leave an object")
    return dict(out)
