"""load_bytes at its edges (issue 14: kills surviving mutants of reconciler/tree/loader.py):
the size limit exactly, where a bad byte is, a byte-order mark, document counts, where a
too-deep later document is reported."""

from __future__ import annotations

from pathlib import Path

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


def test_read_source_reads_what_one_bounded_read_did(tmp_path: Path) -> None:
    """read_source asks for the size the file reports (issue 13), and gives the same
    bytes as one read of MAX_FILE_BYTES + 1: the whole of a small, empty or limit-sized
    file, one byte past the limit of a bigger one, and all of what a file that reports
    less than it has (a pipe, a file in /proc, one that grew) holds, up to that limit."""
    import os
    import threading

    from reconciler.tree.loader import SourceFile, read_source

    def bounded(path: str) -> bytes:
        with open(path, "rb") as fh:
            return fh.read(MAX_FILE_BYTES + 1)

    for size in (0, 1, 4096, MAX_FILE_BYTES, MAX_FILE_BYTES + 1, MAX_FILE_BYTES + 5000):
        path = tmp_path / f"f{size}.yaml"
        path.write_bytes(bytes(i % 251 for i in range(size)))
        data = read_source(SourceFile(path.name, str(path)))
        assert data == bounded(str(path)) and len(data) == min(size, MAX_FILE_BYTES + 1)
    for size in (10_000, MAX_FILE_BYTES + 3):
        fifo = tmp_path / f"pipe{size}"
        os.mkfifo(fifo)
        body = b"k: v\n" * (size // 5) + b"x" * (size % 5)

        def write(fifo: str = str(fifo), body: bytes = body) -> None:
            with open(fifo, "wb") as fh:
                try:
                    fh.write(body)
                except BrokenPipeError:  # the reader stopped at the limit
                    pass

        writer = threading.Thread(target=write)
        writer.start()
        data = read_source(SourceFile(fifo.name, str(fifo)))
        writer.join(timeout=30)
        assert data == body[:MAX_FILE_BYTES + 1]
