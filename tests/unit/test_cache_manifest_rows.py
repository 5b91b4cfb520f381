"""The documents row of a content is read once for find_manifests and find_digested
(issue 13), never reused for another content nor across a save: each answer is the one
a fresh query gives."""

from __future__ import annotations

from pathlib import Path

from reconciler.core.model import Manifest, SourceRef
from reconciler.tree.cache import ValidationCache


def _doc(name: str) -> Manifest:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"k": name}}
    return Manifest("v1", "ConfigMap", "default", name, body, SourceRef("f.yaml", 0))


def _cache(tmp_path: Path) -> ValidationCache:
    return ValidationCache(tmp_path / "cache.sqlite3", "ns", "")


def test_a_row_saved_after_a_miss_is_read(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    assert cache.find_manifests("a" * 64, "f.yaml") == (None, False)
    assert cache.find_digested("a" * 64, "f.yaml") is None
    cache.save_digested({"a" * 64: ((_doc("x"),), ("h1",))})
    found = cache.find_digested("a" * 64, "f.yaml")
    assert found is not None and found[1] == ("h1",)
    assert cache.find_manifests("a" * 64, "f.yaml") == (None, True)
    cache.save_manifests({"b" * 64: (_doc("y"),)})
    docs, row = cache.find_manifests("b" * 64, "g.yaml")
    assert row and docs is not None and docs[0].name == "y"


def test_each_content_gets_its_own_row(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    cache.save_digested({"a" * 64: ((_doc("x"),), ("h1",))})
    cache.save_manifests({"b" * 64: (_doc("y"),)})
    again = _cache(tmp_path)
    assert again.find_digested("a" * 64, "f.yaml") is not None
    docs, row = again.find_manifests("b" * 64, "g.yaml")
    assert row and docs is not None and docs[0].name == "y"
    assert again.find_digested("b" * 64, "g.yaml") is None
    assert again.find_manifests("a" * 64, "f.yaml") == (None, True)
    assert again.find_digested("a" * 64, "f.yaml") is not None
