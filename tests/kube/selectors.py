"""Label and field selectors of LIST/WATCH in the Kubernetes API model: label equality
(`=`, `==`, `!=`), set (`in`, `notin`), existence (`key`, `!key`); field selectors on
`metadata.name` and `metadata.namespace` only."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import bad_request

JSON = dict[str, Any]
Predicate = Callable[[JSON], bool]

_SET = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*$")


def _split(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in selector:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for p in parts if p.strip()]


def _requirement(text: str) -> Callable[[dict[str, str]], bool]:
    if m := _SET.match(text):
        key, op, values = m[1], m[2], {v.strip() for v in m[3].split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if m := _EQ.match(text):
        key, op, value = m[1], m[2], m[3]
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if m := _EXISTS.match(text):
        negate, key = m[1] == "!", m[2]
        return lambda labels: (key in labels) != negate
    raise bad_request(f"unable to parse requirement: {text!r}")


def label_selector(selector: str | None) -> Predicate:
    reqs = [_requirement(p) for p in _split(selector or "")]
    return lambda obj: all(r(obj.get("metadata", {}).get("labels") or {}) for r in reqs)


_FIELDS = {"metadata.name": ("name",), "metadata.namespace": ("namespace",)}


def _field_check(attr: str, equal: bool, value: str) -> Predicate:
    return lambda obj: (obj["metadata"].get(attr) == value) == equal


def field_selector(selector: str | None) -> Predicate:
    checks: list[Predicate] = []
    for part in _split(selector or ""):
        m = _EQ.match(part)
        if not m or m[1] not in _FIELDS:
            raise bad_request(f'"{part}" is not a known field selector: only '
                              '"metadata.name", "metadata.namespace"')
        checks.append(_field_check(_FIELDS[m[1]][0], m[2] != "!=", m[3]))
    return lambda obj: all(c(obj) for c in checks)
