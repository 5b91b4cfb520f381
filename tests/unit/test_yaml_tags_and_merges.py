"""Regressions found by the YAML-text fuzz (issue 14): explicit tags on values they do
not fit, and keys that come from a merge key (`<<:`), were internal errors (a Python
traceback) instead of located findings; a non-string key inside a merge got past the
non-string-key check."""

from __future__ import annotations

import pytest

from reconciler.check.validate import check_bytes

HEAD = "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n"


def findings(text: str) -> list[tuple[int, int, str, str]]:
    report = check_bytes(text.encode(), "t.yaml")
    return [(f.line, f.column, f.rule, f.message) for f in report.result.findings
            if f.severity == "error"]


@pytest.mark.parametrize(("tag", "says"), [
    ("!!bool", "true or false"), ("!!int", "an integer"), ("!!float", "a number"),
    ("!!map", "a mapping")])
@pytest.mark.parametrize("value", ["web", "s3cr3t-CANARY"])
def test_explicit_tag_on_a_value_it_does_not_fit(tag: str, says: str, value: str) -> None:
    (line, column, rule, message), = findings(f"{HEAD}  name: {tag} {value}\n")
    assert (line, column, rule) == (4, 9, "yaml.bad-tag")
    assert says in message and value not in message  # the value may be a secret


def test_explicit_tag_that_fits_is_read() -> None:
    text = HEAD + "  name: !!str web\nspec:\n  running: !!bool true\n  template: {}\n"
    assert all(rule != "yaml.bad-tag" for _, _, rule, _ in findings(text))


@pytest.mark.parametrize("merge", [
    "metadata: &m\n  name: web\n  namespace: demo\nspec:\n  <<: *m\n  runStrategy: Halted\n",
    "metadata:\n  <<: {name: Web}\nspec:\n  runStrategy: Halted\n",
    "metadata:\n  name: web\nspec:\n  <<: [{runStrategy: Sometimes}, {runStrategy: x}]\n",
])
def test_error_under_a_merged_key_is_located(merge: str) -> None:
    text = "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\n" + merge
    found = findings(text)
    assert found
    lines = text.count("\n")
    for line, column, rule, _ in found:
        assert 1 <= line <= lines and column >= 1 and rule


@pytest.mark.parametrize("merge", ['<<: {on: "yes"}', "<<: [{a: b}, {1: x}]", "<<: {null: x}"])
def test_non_string_key_brought_in_by_a_merge_is_refused(merge: str) -> None:
    text = f'{HEAD}  name: web\n  labels:\n    {merge}\nspec:\n  runStrategy: Halted\n'
    (line, _, rule, _), = findings(text)
    assert (line, rule) == (6, "yaml.non-string-key")


def test_merged_key_set_again_is_merge_semantics_not_a_duplicate() -> None:
    text = f"{HEAD}  name: web\n  labels:\n    <<: {{app: a}}\n    app: b\n"
    assert all(rule != "yaml.duplicate-key" for _, _, rule, _ in findings(text))
