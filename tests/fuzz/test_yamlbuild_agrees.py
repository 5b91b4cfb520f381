"""The direct node walk (reconciler/tree/yamlbuild.py) gives what PyYAML's safe
constructor gives, for every text: the same documents (equal, with aliases still shared
objects), or the same located problem.

Inputs: the fuzz seeds with the text edits of tests/fuzz/yaml_text.py (anchors, merges,
duplicate keys, tags, YAML 1.1 scalars, several documents), plus hand-picked cases.
The reference is `parse_documents` with the walk switched off (every document goes to
the loader's own constructor).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from yaml_text import SEEDS, YAML11, yaml_texts

from reconciler.tree import yamlsafe
from reconciler.tree.yamlbuild import Unusual

Outcome = tuple[str, Any]
RUN_LIMIT = 5_000  # small enough for the hand-picked bombs below to reach it


def _declined(loader: Any, node: Any) -> Any:
    raise Unusual("reference run")


def _outcome(text: str) -> Outcome:
    """The documents or the problem, and what alias expansion left of a run's budget
    (the shape counts taken while building must spend exactly what the walk spends)."""
    budget = yamlsafe.AliasBudget(RUN_LIMIT, "run")
    try:
        return "docs", (list(yamlsafe.parse_documents(text, budget)), budget.remaining)
    except yamlsafe.YamlProblem as problem:
        return "problem", (problem, budget.remaining)


def _reference(text: str, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    with monkeypatch.context() as m:
        m.setattr(yamlsafe, "build", _declined)
        return _outcome(text)


def _containers(value: Any) -> Iterator[Any]:
    """Every dict and list, in a fixed order, repeats included (to compare sharing)."""
    stack = [value]
    seen: set[int] = set()
    while stack:
        v = stack.pop()
        if isinstance(v, dict | list):
            yield v
            if id(v) in seen:
                continue
            seen.add(id(v))
            stack.extend(reversed(list(v.values()) if isinstance(v, dict) else v))


def _sharing(docs: list[Any]) -> list[int]:
    """Each container's first position in the walk: equal lists mean the same objects
    are shared in the same places (an alias is one object, as the budget assumes)."""
    first: dict[int, int] = {}
    return [first.setdefault(id(c), i) for i, c in enumerate(_containers(docs))]


def assert_same(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, ref = _outcome(text), _reference(text, monkeypatch)
    assert fast[0] == ref[0], (text, fast, ref)
    if fast[0] == "docs":
        assert fast[1] == ref[1]
        assert [type(d) for d in fast[1][0]] == [type(d) for d in ref[1][0]]
        assert _sharing(fast[1][0]) == _sharing(ref[1][0])
    else:
        assert fast[1] == ref[1]


CASES = [
    "a: 1\nb: yes\nc: ~\nd: 1.5\ne: 0x1F\nf: '017'\ng: 1:20\nh: 2001-12-14\n",
    "base: &b {cpu: 1, mem: 2Gi}\none: *b\ntwo: *b\n",  # one object, shared
    "base: &b {cpu: 1}\nvm:\n  <<: *b\n  mem: 2Gi\n",  # merge: the loader's own
    "a: 1\na: 2\n",  # duplicate key
    "a: !!int web\na: 1\n",  # two problems: the loader's order decides
    "1: x\n",  # non-string key
    "on: x\n",
    "? [a]\n: x\n",
    "a: !custom x\n",
    "a: !!binary aGVsbG8=\n",
    "a: !!str 1\nb: !!int '7'\nc: !!float '1'\nd: !!bool 'yes'\n",
    "a: &x [*x]\n",  # recursive alias
    "- &s str\n- *s\n- &l [1]\n- *l\n",
    "=: x\n",
    "---\na: 1\n---\n---\n- b\n...\n",
    "a: !!map {b: 1}\nc: !!seq [1]\n",
    "x: " + "[" * 70 + "]" * 70 + "\n",  # too deep
    "x: " + "[" * 63 + "]" * 63 + "\n",  # the deepest allowed, and one more
    "x: " + "[" * 64 + "]" * 64 + "\n",
    "x: " + "{a: " * 63 + "1" + "}" * 63 + "\n",
    # aliases: repeats counted once per place, nested repeats, a bomb per document and
    # one per run (RUN_LIMIT), and a repeat whose copy lies deeper than the original
    "a: &a [1, 2, {b: 3}]\nb: [*a, *a, [*a]]\nc: {d: *a}\n",
    "a: &a [x, y]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nd: [*c, *c, *c]\n",
    "a: &a [x, y, z, w]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c]\n"
    "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
    "---\na: &a [x, y, z, w]\nb: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n" * 60,
    "a: &a " + "[" * 40 + "1" + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n",
    "- &s 1\n- *s\n- *s\n",
    "'scalar only'\n",
    "a: &a []\nb: [*a, *a, {}]\n",
]


@pytest.mark.parametrize("text", CASES)
def test_hand_picked_texts_agree(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_same(text, monkeypatch)


def test_every_seed_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    for text in SEEDS:
        assert_same(text, monkeypatch)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
@given(case=yaml_texts())
def test_edited_texts_agree(case: tuple[str, tuple[str, ...]],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert_same(case[0], monkeypatch)


def test_aliases_stay_one_object() -> None:
    doc = next(yamlsafe.parse_documents("base: &b {cpu: 1}\none: *b\nlist: &l [1]\ntwo: *l\n"))
    assert isinstance(doc, dict)
    assert doc["one"] is doc["base"] and doc["two"] is doc["list"]


def test_plain_documents_do_not_reach_the_loader_constructor(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk really is the path for plain documents (else this file proves nothing)."""
    def refuse(self: Any, node: Any) -> Any:
        raise AssertionError("the loader's constructor was used")

    monkeypatch.setattr(yamlsafe._Loader, "construct_document", refuse)
    docs = list(yamlsafe.parse_documents("a: 1\nb: [x, {c: yes}]\n---\n- 1\n"))
    assert docs == [{"a": 1, "b": ["x", {"c": True}]}, [1]]


class _Unremembered(yaml.CSafeLoader):
    """The same resolution rules, asked afresh for every scalar."""


_Unremembered.yaml_implicit_resolvers = yamlsafe._Loader.yaml_implicit_resolvers


def _tags(loader: type[Any], text: str) -> list[str]:
    out, stack = [], [yaml.compose(text, Loader=loader)]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            out.append(node.tag)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return out


@pytest.mark.parametrize("value", [v for v in YAML11 if not v.startswith(("'", '"', "!"))])
def test_remembered_resolution_keeps_quoting_and_plain_apart(value: str) -> None:
    """The resolver's memo answers for plain scalars only: the same value quoted before
    or after it stays a string, and every tag is what a fresh resolution gives."""
    text = f"a: '{value}'\nb: {value}\nc: \"{value}\"\nd: {value}\n{value}: x\n"
    assert _tags(yamlsafe._Loader, text) == _tags(_Unremembered, text)


def test_a_built_document_is_freed_without_the_collector() -> None:
    """Building leaves no reference cycle: a cold validate of 10,000 files would otherwise
    keep each document alive until the collector ran (peak memory 90 → 114 MiB)."""
    import gc

    text = "a: &a {b: [1, x, {c: yes}]}\nd: *a\n---\n- e\n"
    list(yamlsafe.parse_documents(text))  # warm: the resolver's memo, imports
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            list(yamlsafe.parse_documents(text))
        assert gc.collect() == 0
    finally:
        gc.enable()


def _all_tags(loader: type[Any], text: str) -> list[tuple[str, str]] | str:
    """Every node's kind and tag, collections included (or the error composing gives)."""
    try:
        docs = list(yaml.compose_all(text, Loader=loader))
    except yaml.YAMLError as exc:
        return str(exc)
    out, stack = [], [d for d in docs if d is not None]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        out.append((type(node).__name__, node.tag))
        if id(node) in seen:
            continue  # an alias: its node once (the bombs below would not fit in memory)
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return out


def test_every_node_gets_the_resolvers_tag() -> None:
    """The loader's resolver answers collections and quoted scalars itself (issue 13):
    every node, in every hand-picked text and seed, gets the tag the base resolver
    gives (plain, quoted, explicit tags, empty and flow collections)."""
    long_int, long_float = "1" * 70, "2." + "5" * 70  # past the memo's length: resolved afresh
    texts = [*CASES, *SEEDS, "a: []\nb: {}\nc: ''\nd: \"\"\ne:\n- - x\n- {f: [g]}\n",
             f"a: {long_int}\nb: '{long_int}'\nc: [{long_float}, \"{long_float}\"]\n"]
    for text in texts:
        assert _all_tags(yamlsafe._Loader, text) == _all_tags(_Unremembered, text), text
