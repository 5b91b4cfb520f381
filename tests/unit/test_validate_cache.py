"""The content-hash cache: an unchanged tree parses nothing again; anything else is a miss."""

from __future__ import annotations

from pathlib import Path

import pytest

import reconciler.check.validate as validate_mod
from reconciler.check.validate import validate_paths
from reconciler.tree.yamlsafe import AliasBudget

VM = """apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: {name}
spec:
  runStrategy: Halted
  template:
    spec:
      domain:
        devices: {{}}
        memory:
          guest: 64Mi
"""


@pytest.fixture()
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("a", "b", "c"):
        (root / f"{name}.yaml").write_text(VM.format(name=name))
    return root


@pytest.fixture()
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = validate_mod.load_bytes

    def counting(content: bytes, display: str,
                 run_budget: AliasBudget | None = None) -> validate_mod.LoadedFile:
        seen.append(Path(display).name)
        return real(content, display, run_budget)

    monkeypatch.setattr(validate_mod, "load_bytes", counting)
    return seen


def test_warm_run_parses_nothing(tree: Path, parses: list[str]) -> None:
    first = validate_paths([str(tree)])
    assert first.valid and len(first.objects) == 3
    assert sorted(parses) == ["a.yaml", "b.yaml", "c.yaml"]
    parses.clear()
    second = validate_paths([str(tree)])
    assert parses == []
    assert second.objects == first.objects and second.findings == first.findings


def test_changed_file_alone_is_parsed_again(tree: Path, parses: list[str]) -> None:
    validate_paths([str(tree)])
    parses.clear()
    (tree / "b.yaml").write_text(VM.format(name="b") + "  # edited\n")
    validate_paths([str(tree)])
    assert parses == ["b.yaml"]


def test_cached_errors_are_reported_again(tree: Path, parses: list[str]) -> None:
    (tree / "c.yaml").write_text(VM.format(name="c").replace("Halted", "Sometimes"))
    cold = validate_paths([str(tree)])
    warm = validate_paths([str(tree)])
    assert not cold.valid and warm.errors == cold.errors


def test_corrupt_cache_is_rebuilt(tree: Path, parses: list[str], tmp_path: Path) -> None:
    validate_paths([str(tree)])
    cache = tmp_path / "state" / "cache" / "validate.sqlite3"
    for name in ("validate.sqlite3-wal", "validate.sqlite3-shm"):
        (cache.parent / name).unlink(missing_ok=True)
    cache.write_bytes(b"\x00garbage" * 1000)
    parses.clear()
    report = validate_paths([str(tree)])
    assert len(report.objects) == 3 and sorted(parses) == ["a.yaml", "b.yaml", "c.yaml"]
    parses.clear()
    assert len(validate_paths([str(tree)]).objects) == 3 and parses == []  # rebuilt


def test_other_namespace_invalidates(tree: Path, parses: list[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    validate_paths([str(tree)])
    parses.clear()
    validate_mod.cache_namespace.cache_clear()
    monkeypatch.setattr(validate_mod, "__version__", "99.0.0")
    validate_paths([str(tree)])
    validate_mod.cache_namespace.cache_clear()
    assert len(parses) == 3


def test_unchanged_tree_writes_no_cache(tree: Path, tmp_path: Path) -> None:
    validate_paths([str(tree)])
    cache = tmp_path / "state" / "cache" / "validate.sqlite3"
    wal = cache.with_name(cache.name + "-wal")
    before = (cache.stat().st_mtime_ns, wal.stat().st_size if wal.exists() else 0)
    validate_paths([str(tree)])
    assert (cache.stat().st_mtime_ns, wal.stat().st_size if wal.exists() else 0) == before


def test_parallel_and_serial_agree(tree: Path) -> None:
    for i in range(100):
        (tree / f"x{i:03d}.yaml").write_text(VM.format(name=f"x{i:03d}"))
    (tree / "x050.yaml").write_text(VM.format(name="x050").replace("64Mi", "lots"))
    serial = validate_paths([str(tree)], use_cache=False, workers=1)
    parallel = validate_paths([str(tree)], use_cache=False, workers=2)
    assert serial.findings == parallel.findings and serial.objects == parallel.objects
    assert not serial.valid


def test_workers_answer_touched_files_from_the_cache(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files whose stat moved but whose bytes did not are looked up by the worker
    processes, not checked again. (A cold cache gives the workers no reader at all:
    issue 13; that shortcut must not reach a cache that has the results.)"""
    import os

    for i in range(100):
        (tree / f"x{i:03d}.yaml").write_text(VM.format(name=f"x{i:03d}"))
    first = validate_paths([str(tree)], workers=2)
    for f in tree.iterdir():
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 5_000_000_000))

    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("a file with cached content was checked again")

    monkeypatch.setattr(validate_mod, "check_bytes", refuse)  # inherited by the fork
    second = validate_paths([str(tree)], workers=2)
    assert second.objects == first.objects and second.findings == first.findings
