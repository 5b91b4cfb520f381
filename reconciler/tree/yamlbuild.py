"""Plain data from a composed YAML node, in one direct walk (issue 13: cold validate CPU).

PyYAML's constructor dispatches every node through `construct_object` (memo tables,
generators for deferred containers, a tag lookup per node); for the plain mappings,
sequences and scalars a manifest is made of, that machinery costs about as much as
libyaml's parsing. `build` walks the node tree once instead and returns the same data.

It handles only what it can build exactly as the safe loader would: plain-string keys,
each once; the core tags (map, seq, str, null and the scalar constructors registered on
the loader). Anything else (a merge key, a duplicate or non-string key, a custom or
collection tag, a recursive alias) raises `Unusual`, and the caller builds the document
with the loader's own constructor, which gives the located error or the merged result.
Aliases stay shared objects, as with PyYAML: the alias budget counts them by identity.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import yaml

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
# Keys and string values up to this long are interned: 10,000 manifests repeat the same
# few dozen keys and enum-like values, and a long-lived watch keeps every one (issue 13:
# ~47 MiB of 10,000 VMs' bodies); a worker's results then pickle each once per chunk.
_SHORT = 40
# Scalar tags built by the loader's registered constructors (bool, int, float: they
# parse the value); a tag outside this set is left to the loader.
_SCALARS = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_SCALAR_NODE = yaml.ScalarNode  # one global lookup per node, not a global and an attribute


class Unusual(Exception):
    """The node needs the loader's own constructor (or its located error)."""


class Shape(NamedTuple):  # a NamedTuple: cheaper to define than a dataclass (tree/cache.py)
    """What yamlsafe's shape check would count walking the built document, computed
    while building it (once per distinct node, so an alias bomb costs nothing here):
    `visits`, every value once per place it appears with aliases expanded; `height`,
    the deepest chain of containers; `first`, the visits that are not repeats of an
    aliased container (every container once, plus the scalars directly in each)."""

    visits: int
    height: int
    first: int

    @property
    def aliased(self) -> int:
        return self.visits - self.first


def build(loader: Any, node: yaml.Node) -> tuple[Any, Shape]:
    """The document under `node`, as the loader's safe constructor would build it."""
    walk = _Walk(loader)
    data, visits, height = walk.value(node)
    return data, Shape(visits, height, walk.first if height else 1)


class _Walk:
    """One document's walk. A class, not a closure: a nested function that calls itself
    is a reference cycle, which would keep every built document alive until the
    collector runs (peak memory of a cold validate, issue 13)."""

    __slots__ = ("busy", "done", "first", "loader", "scalar")

    def __init__(self, loader: Any) -> None:
        constructors: Mapping[str, Callable[[Any, yaml.Node], Any]] = loader.yaml_constructors
        self.loader = loader
        self.scalar = {tag: constructors[tag] for tag in _SCALARS if tag in constructors}
        self.done: dict[int, tuple[Any, int, int]] = {}  # node → (data, visits, height)
        self.busy: set[int] = set()
        self.first = 0

    def value(self, n: yaml.Node) -> tuple[Any, int, int]:
        tag = n.tag
        cls = n.__class__
        if cls is yaml.ScalarNode:
            if tag == _STR:
                text = n.value
                return (sys.intern(text) if len(text) <= _SHORT else text), 1, 0
            if tag == _NULL:
                return None, 1, 0
            make = self.scalar.get(tag)
            if make is None:
                raise Unusual(tag)
            return make(self.loader, n), 1, 0
        key = id(n)
        done = self.done
        if key in done:
            return done[key]  # an alias: the same object, as PyYAML shares it
        if key in self.busy:
            raise Unusual("recursive alias")
        self.busy.add(key)
        visits, height, scalars = 1, 0, 0
        if cls is yaml.MappingNode and tag == _MAP:
            data: Any = {}
            for key_node, value_node in n.value:
                if key_node.__class__ is not yaml.ScalarNode or key_node.tag != _STR:
                    raise Unusual("key")
                name = sys.intern(key_node.value)
                if name in data:
                    raise Unusual("duplicate key")
                if value_node.__class__ is _SCALAR_NODE and value_node.tag == _STR:
                    # Most values are plain strings: what value() returns for them,
                    # (value, 1, 0), without a call per scalar (issue 13: cold CPU).
                    text = value_node.value
                    data[name] = sys.intern(text) if len(text) <= _SHORT else text
                    visits += 1
                    scalars += 1
                    continue
                data[name], v, h = self.value(value_node)
                visits += v
                height = max(height, h)
                scalars += h == 0
        elif cls is yaml.SequenceNode and tag == _SEQ:
            data = []
            for item in n.value:
                if item.__class__ is _SCALAR_NODE and item.tag == _STR:
                    text = item.value  # as in the mapping loop above
                    data.append(sys.intern(text) if len(text) <= _SHORT else text)
                    visits += 1
                    scalars += 1
                    continue
                d, v, h = self.value(item)
                data.append(d)
                visits += v
                height = max(height, h)
                scalars += h == 0
        else:
            raise Unusual(tag)
        self.busy.discard(key)
        self.first += 1 + scalars
        done[key] = (data, visits, height + 1)
        return done[key]
