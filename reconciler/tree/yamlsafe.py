"""Parse YAML text into plain data, safely and fast.

PyYAML's libyaml-backed `CSafeLoader` is the fast path (~0.6 ms for a 110-line VM).
It reads YAML 1.1 like kubectl does (unquoted `no` is false, `52:54:00:12:34:56` is a
sexagesimal integer); the schema layer turns such coercions into clear errors.
On top of it this module refuses what a safe loader lets through silently:

- duplicate mapping keys (PyYAML keeps the last one without a word),
- non-string mapping keys (`on:`, `1:`) that JSON and Kubernetes cannot represent,
- alias bombs: expansion is bounded per document, per file and per run,
- nesting deeper than MAX_DEPTH,
- values JSON cannot hold (binary, sets, timestamps are kept as strings).

Every problem is a `YamlProblem` carrying a 1-based line/column.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import yaml

from reconciler.core.model import JSON
from reconciler.tree.yamlbuild import Shape, Unusual, build

MAX_DEPTH = 64
# Node visits allowed per document once aliases are expanded. A 110-line VM has ~250
# nodes; a billion-laughs document blows through this within microseconds.
MAX_NODES_PER_DOCUMENT = 200_000
# Nodes alias expansion may add per file, and over all the files one run reads: without
# these, 4,200 small bombs in one 2 MiB file (each under the per-document limit) cost
# minutes of CPU. A legitimate spec's anchors add a few hundred nodes.
MAX_ALIAS_NODES_PER_FILE = 200_000
MAX_ALIAS_NODES_PER_RUN = 1_000_000
RUN_BUDGET_RULE = "yaml.alias-budget"


@dataclass(frozen=True)
class YamlProblem(Exception):
    """A located YAML-level problem (1-based line and column)."""

    rule: str
    message: str
    line: int
    column: int
    doc: int = 0


class _Located(yaml.MarkedYAMLError):
    def __init__(self, rule: str, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem=message, problem_mark=mark)
        self.rule = rule
        self.message = message


class _Resolver(yaml.resolver.Resolver):
    """YAML 1.1 resolution minus timestamps: Kubernetes keeps them as strings."""


_Resolver.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}


class _Loader(yaml.CSafeLoader):
    # Plain scalars' implicit tags, by value: libyaml asks for one per scalar, and the
    # same short values (keys above all) recur in every file. Resolution is a function
    # of the value alone here (no path resolvers), so a remembered answer is the answer.
    _resolved: ClassVar[dict[str, str]] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit[0] and len(value) <= _RESOLVE_MEMO_LENGTH:
            tag = self._resolved.get(value)
            if tag is None:
                tag = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
                if len(self._resolved) < _RESOLVE_MEMO_SIZE:
                    self._resolved[value] = tag
            return tag
        if not self.yaml_path_resolvers and (kind is not yaml.ScalarNode or not implicit[0]):
            # The base class's answer without its call (a third of the calls, issue 13):
            # with no path resolvers, a collection or a quoted scalar gets its kind's tag.
            return _DEFAULT_TAGS.get(kind)
        return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]


_DEFAULT_TAGS = {
    yaml.ScalarNode: yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG,
    yaml.SequenceNode: yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,
    yaml.MappingNode: yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
}
_RESOLVE_MEMO_LENGTH = 64
_RESOLVE_MEMO_SIZE = 50_000


# Resolution data lives on the class; swap in ours without touching PyYAML's globals.
_Loader.yaml_implicit_resolvers = _Resolver.yaml_implicit_resolvers


def _string_key(loader: _Loader, key_node: yaml.Node) -> str:
    if not isinstance(key_node, yaml.ScalarNode):
        raise _Located(
            "yaml.complex-key", "mapping keys must be plain strings", key_node.start_mark
        )
    key = loader.construct_object(key_node)
    if not isinstance(key, str):
        shown = "null" if key is None else str(key).lower() if isinstance(key, bool) else key
        raise _Located(
            "yaml.non-string-key",
            f"mapping key {key_node.value!r} is read as {type(key).__name__} {shown} "
            "by YAML 1.1 (kubectl); quote it",
            key_node.start_mark,
        )
    return key


def _construct_mapping(
    loader: _Loader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    if not isinstance(node, yaml.MappingNode):  # `!!map scalar`
        raise _Located("yaml.bad-tag", "a value tagged !!map is not a mapping",
                       node.start_mark)
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = _string_key(loader, key_node)
        if key in seen:
            first = seen[key].start_mark
            raise _Located(
                "yaml.duplicate-key",
                f'duplicate key "{key}" (first defined at line {first.line + 1})',
                key_node.start_mark,
            )
        seen[key] = key_node
    loader.flatten_mapping(node)
    # Keys brought in by a merge (`<<: {on: x}`) bypass the loop above: check them too.
    # (A merged key that the mapping sets again is normal merge semantics, not a duplicate.)
    for key_node, _ in node.value:
        _string_key(loader, key_node)
    return dict(yaml.constructor.BaseConstructor.construct_mapping(loader, node, deep=deep))


def _refuse(tag_name: str) -> Any:
    def construct(loader: _Loader, node: yaml.Node) -> Any:
        raise _Located(
            "yaml.unsupported-type",
            f"{tag_name} values are not allowed in a manifest (JSON cannot hold them)",
            node.start_mark,
        )

    return construct


def _checked(tag_name: str, kind: str) -> Any:
    """PyYAML's constructor for an explicit scalar tag, with a bad value (`!!int web`) as
    a located problem instead of a bare ValueError/KeyError. The value is not quoted: it
    may be a secret (safety rule 10)."""
    base = _Loader.yaml_constructors[f"tag:yaml.org,2002:{tag_name}"]

    def construct(loader: _Loader, node: yaml.Node) -> Any:
        try:
            return base(loader, node)
        except (ValueError, KeyError, TypeError, OverflowError):
            raise _Located("yaml.bad-tag", f"a value tagged !!{tag_name} is not {kind}",
                           node.start_mark) from None

    return construct


for _tag, _kind in (("bool", "true or false"), ("int", "an integer"), ("float", "a number")):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _checked(_tag, _kind))
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:binary", _refuse("!!binary"))
_Loader.add_constructor("tag:yaml.org,2002:set", _refuse("!!set"))
_Loader.add_constructor("tag:yaml.org,2002:omap", _refuse("!!omap"))
_Loader.add_constructor("tag:yaml.org,2002:pairs", _refuse("!!pairs"))
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _refuse("!!timestamp"))


class AliasBudget:
    """Nodes that alias expansion may still add (nodes beyond those written in the text).

    One budget per file bounds a file of many small bombs, each under the per-document
    limit; one shared by every file of a run bounds a tree of such files. Mutable by
    design: the caller creates one per run and passes it along."""

    def __init__(self, limit: int, scope: str) -> None:
        self.limit = limit
        self.remaining = limit
        self.scope = scope  # "file" or "run": named in the refusal

    @classmethod
    def for_run(cls) -> AliasBudget:
        return cls(MAX_ALIAS_NODES_PER_RUN, "run")


def _check_shape(doc: JSON, doc_index: int, budgets: Sequence[AliasBudget] = ()) -> None:
    """Bound depth and alias expansion with one iterative walk; refuse non-JSON values.

    A container met a second time is an alias (the constructor reuses one object per
    anchor); it and everything under it count against `budgets` too."""
    budget = MAX_NODES_PER_DOCUMENT
    tightest = min(budgets, key=lambda b: b.remaining, default=None)
    alias_limit = tightest.remaining if tightest is not None else budget
    aliased = 0
    seen: set[int] = set()
    stack: list[tuple[JSON, int, bool]] = [(doc, 0, False)]
    while stack:
        value, depth, copy = stack.pop()
        budget -= 1
        if budget < 0:
            raise YamlProblem(
                "yaml.alias-bomb",
                f"document expands to more than {MAX_NODES_PER_DOCUMENT} nodes "
                "(alias expansion); refusing it",
                1,
                1,
                doc_index,
            )
        if isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise YamlProblem(
                    "yaml.too-deep", f"nesting deeper than {MAX_DEPTH} levels", 1, 1, doc_index
                )
            if not copy:
                copy = id(value) in seen
                seen.add(id(value))
            children = value.values() if isinstance(value, dict) else value
            stack.extend((v, depth + 1, copy) for v in children)
        if copy:
            aliased += 1
            if aliased > alias_limit:
                raise _over_budget(tightest, doc_index)
    for b in budgets:
        b.remaining -= aliased


def _over_budget(budget: AliasBudget | None, doc_index: int) -> YamlProblem:
    scope = budget.scope if budget is not None else "file"
    limit = budget.limit if budget is not None else MAX_NODES_PER_DOCUMENT
    where = "this file's documents" if scope == "file" else "the files read in this run"
    return YamlProblem(
        "yaml.alias-bomb" if scope == "file" else RUN_BUDGET_RULE,
        f"alias expansion over {where} exceeds {limit} nodes; refusing it",
        1, 1, doc_index)


def _problem_from(exc: yaml.YAMLError, doc_index: int) -> YamlProblem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    column = mark.column + 1 if mark is not None else 1
    if isinstance(exc, _Located):
        return YamlProblem(exc.rule, exc.message, line, column, doc_index)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    if "'\\t'" in problem or "tab" in problem.lower():
        message = "tab character where YAML allows only spaces (indent with spaces)"
    else:
        message = f"{context}, {problem}" if context else problem
    return YamlProblem("yaml.syntax", message, line, column, doc_index)


def _document(loader: _Loader) -> tuple[JSON, Shape | None]:
    """The next document: built directly when it is plain (yamlbuild), else by PyYAML's
    constructor, which also names the problem of a document the direct walk declined or
    failed on (the order of its checks decides which problem is reported first). The
    shape comes with a directly built document (None: walk the document for it)."""
    node = loader.get_node()
    if node is None:
        return None, None
    try:
        return build(loader, node)
    except (Unusual, yaml.YAMLError, ValueError, TypeError, KeyError, OverflowError):
        return loader.construct_document(node), None


def _check_built(doc: JSON, shape: Shape | None, doc_index: int,
                 budgets: Sequence[AliasBudget]) -> None:
    """_check_shape, answered from the counts taken while building when every bound
    holds (the common case); else the walk itself finds and names the first problem."""
    if (shape is not None and shape.visits <= MAX_NODES_PER_DOCUMENT
            and shape.height <= MAX_DEPTH
            and shape.aliased <= min((b.remaining for b in budgets),
                                     default=MAX_NODES_PER_DOCUMENT)):
        for b in budgets:
            b.remaining -= shape.aliased
        return
    _check_shape(doc, doc_index, budgets)


def parse_documents(text: str, run_budget: AliasBudget | None = None) -> Iterator[JSON]:
    """Yield each document of `text` as plain data (None for an empty document).

    Raises YamlProblem for anything unsafe or malformed; documents already yielded stay
    valid, but callers treat a failing file as failing whole.
    """
    loader = _Loader(text)
    budgets = [AliasBudget(MAX_ALIAS_NODES_PER_FILE, "file")]
    if run_budget is not None:
        budgets.append(run_budget)
    doc_index = 0
    try:
        while loader.check_data():  # type: ignore[no-untyped-call]
            try:
                doc, shape = _document(loader)
            except RecursionError:
                raise YamlProblem(
                    "yaml.too-deep", f"nesting deeper than {MAX_DEPTH} levels", 1, 1, doc_index
                ) from None
            _check_built(doc, shape, doc_index, budgets)
            yield doc
            doc_index += 1
    except yaml.YAMLError as exc:
        raise _problem_from(exc, doc_index) from None
    finally:
        loader.dispose()
