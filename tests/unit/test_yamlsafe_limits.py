"""YAML safety limits and messages, exactly (issue 14: kills surviving mutants of
reconciler/tree/yamlsafe.py). The documented nesting limit is 64 levels, for lists and
mappings alike; problems name the document and the lines involved."""

from __future__ import annotations

import pytest

from reconciler.tree.yamlsafe import YamlProblem, parse_documents


def nested(kind: str, levels: int) -> str:
    return "[" * levels + "]" * levels if kind == "list" else "{a: " * levels + "1" + "}" * levels


@pytest.mark.parametrize("kind", ["list", "map"])
def test_nesting_limit_is_64_levels(kind: str) -> None:
    assert list(parse_documents(nested(kind, 64)))
    with pytest.raises(YamlProblem) as exc:
        list(parse_documents(nested(kind, 65)))
    assert (exc.value.rule, exc.value.line, exc.value.column) == ("yaml.too-deep", 1, 1)


def test_problem_names_its_document() -> None:
    with pytest.raises(YamlProblem) as exc:
        list(parse_documents("a: 1\n---\n" + nested("list", 65)))
    assert (exc.value.rule, exc.value.doc) == ("yaml.too-deep", 1)


def test_null_key_message() -> None:
    with pytest.raises(YamlProblem) as exc:
        list(parse_documents("~: x\n"))
    assert exc.value.message == \
        "mapping key '~' is read as NoneType null by YAML 1.1 (kubectl); quote it"


def test_duplicate_key_names_both_lines() -> None:
    with pytest.raises(YamlProblem) as exc:
        list(parse_documents("a: 1\nb: 2\na: 3\n"))
    assert (exc.value.line, exc.value.column) == (3, 1)
    assert exc.value.message == 'duplicate key "a" (first defined at line 1)'


def test_complex_key_is_refused() -> None:
    with pytest.raises(YamlProblem) as exc:
        list(parse_documents("? [a, b]\n: x\n"))
    assert exc.value.rule == "yaml.complex-key"


def _aliased(last: int) -> str:
    """A document of 1 + 199 * 1000 + (1 + last) nodes once its aliases are expanded."""
    items = ",".join(["0"] * 999)
    keys = "".join(f"k{i}: *x\n" for i in range(198))
    return f"a: &x [{items}]\n{keys}last: [{','.join(['0'] * last)}]\n"


def test_alias_expansion_budget_is_exactly_200000_nodes() -> None:
    assert list(parse_documents(_aliased(998)))  # 200,000 nodes
    with pytest.raises(YamlProblem) as exc:
        list(parse_documents(_aliased(999)))  # 200,001
    assert exc.value.rule == "yaml.alias-bomb" and "200000 nodes" in exc.value.message


def test_syntax_message_is_pyyaml_context_and_problem() -> None:
    with pytest.raises(YamlProblem) as exc:
        list(parse_documents("a: [\n"))
    assert exc.value.message == "while parsing a flow node, did not find expected node content"
