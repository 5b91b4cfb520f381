"""Manifests read from different files share one string object per key and per short
value (reconciler/tree/yamlbuild.py interns them): a watch keeps every manifest of a
10,000-VM tree, and 550,000 key strings were 30 MiB (issue 13). Equal data either way;
these tests pin the sharing itself."""

from __future__ import annotations

from typing import Any

from reconciler.tree.yamlsafe import parse_documents

LONG = "x" * 200


def _doc(text: str) -> Any:
    docs = list(parse_documents(text))
    assert len(docs) == 1
    return docs[0]


def test_two_files_keys_and_short_values_are_one_object_each() -> None:
    a = _doc("spec:\n  runStrategy: Halted\n  bus: virtio\n")
    b = _doc("# another file, other order\nspec:\n  bus: virtio\n  runStrategy: Halted\n")
    assert a == {"spec": {"runStrategy": "Halted", "bus": "virtio"}}
    (ka,), (kb,) = a.keys(), b.keys()
    assert ka is kb
    for key in ("runStrategy", "bus"):
        k1 = next(k for k in a["spec"] if k == key)
        k2 = next(k for k in b["spec"] if k == key)
        assert k1 is k2
        assert a["spec"][key] is b["spec"][key]


def test_a_long_value_is_read_as_written_and_not_kept_shared() -> None:
    a = _doc(f"items:\n- {LONG}\n- short\n")
    b = _doc(f"items: [{LONG}, short]\n")
    assert a == b == {"items": [LONG, "short"]}
    assert a["items"][1] is b["items"][1]
    assert a["items"][0] is not b["items"][0]  # a long text (user data) is not interned
