"""load_bytes at its edges (issue 14: kills surviving mutants of reconciler/tree/loader.py):
the size limit exactly, where a bad byte is, a byte-order mark, document counts, where a
too-deep later document is reported."""

from __future__ import annotations

from reconciler.tree.loader import MAX_FILE_BYTES, load_bytes

VM = b"apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n  name: a\n"


def located(content: bytes) -> list[tuple[int, int, str]]:
    return [(f.line, f.column, f.rule) for f in load_bytes(content, "f.yaml").findings]


def test_size_limit_is_exactly_2_mib() -> None:
    assert MAX_FILE_BYTES == 2 * 1024 * 1024
    at_limit = b"#" * (MAX_FILE_BYTES - 1) + b"\n"
    assert [r for _, _, r in located(at_limit)] == ["yaml.empty"]
    (finding,) = load_bytes(at_limit + b"\n", "f.yaml").findings
    assert (finding.line, finding.column, finding.rule) == (1, 1, "yaml.too-large")
    assert "larger than 2 MiB" in finding.message


def test_bad_byte_is_located() -> None:
    assert located(b"a: 1\nbc: \xff\n") == [(2, 5, "yaml.encoding")]
    assert located(b"\xfe") == [(1, 1, "yaml.encoding")]
    assert located(b"\n\xff") == [(2, 1, "yaml.encoding")]  # a newline first


def test_byte_order_mark_is_not_content() -> None:
    loaded = load_bytes("\ufeff".encode() + VM, "f.yaml")
    assert [m.name for m in loaded.manifests] == ["a"] and not loaded.findings
    assert located("\ufeff".encode() + b"a: [\n") == located(b"a: [\n")


def test_documents_are_counted_and_empty_ones_skipped() -> None:
    loaded = load_bytes(VM + b"---\n---\n" + VM.replace(b"name: a", b"name: b"), "f.yaml")
    assert loaded.documents == 2 and [m.name for m in loaded.manifests] == ["a", "b"]
    assert located(b"# only a comment\n") == [(1, 1, "yaml.empty")]


def test_too_deep_later_document_is_reported_at_its_start() -> None:
    deep = b"[" * 65 + b"]" * 65
    assert located(VM + b"---\n# deep one\n" + deep + b"\n") == [(7, 1, "yaml.too-deep")]
