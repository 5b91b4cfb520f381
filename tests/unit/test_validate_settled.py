"""The settled-tree answer of a warm `validate` (tree/settled.py, issue 13): an unchanged
tree whose files all settled out of the racy window is answered from the stored tree row
without the checks; anything its stats digest keys on (a file's content, mtime, size,
inode, path; the set of files; the namespace: virtsync version, schema, rule code) sends
the run down the full path, and the output is always what an uncached run prints."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

import reconciler.check.validate as validate_mod
from reconciler.check import incremental
from reconciler.check.validate import ValidationReport
from reconciler.cli import main
from reconciler.tree import settled

VM = """apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: {name}
spec:
  runStrategy: Halted
  template:
    spec:
      domain:
        firmware:
          uuid: 00000000-0000-4000-8000-{n:012d}
        devices: {{}}
        memory:
          guest: 64Mi
"""
HOUR_AGO = time.time() - 3600


def vm(name: str, n: int) -> str:
    return VM.format(name=name, n=n)


@pytest.fixture()
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    for n, name in enumerate(("a", "b", "sub/c"), start=1):
        (root / f"{name}.yaml").write_text(vm(name.replace("sub/", ""), n))
    settle(root)
    return root


def settle(root: Path) -> None:
    """Every file written an hour ago: out of the racy window."""
    for f in root.rglob("*"):
        os.utime(f, (HOUR_AGO, HOUR_AGO))


@pytest.fixture()
def full_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per run not answered from the settled row: the full path
    (validate_paths), or the changed buckets' (incremental.edited)."""
    runs: list[int] = []
    real = validate_mod.validate_paths
    real_edited = incremental.edited

    def counting(*args: Any, **kwargs: Any) -> ValidationReport:
        runs.append(1)
        return real(*args, **kwargs)

    def counting_edited(*args: Any, **kwargs: Any) -> incremental.EditedTree | None:
        found = real_edited(*args, **kwargs)
        if found is not None:
            runs.append(1)
        return found

    monkeypatch.setattr(validate_mod, "validate_paths", counting)
    monkeypatch.setattr(incremental, "edited", counting_edited)
    return runs


def validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["validate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def uncached(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return validate(capsys, "--no-cache", *args)


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
def test_unchanged_settled_tree_is_answered_without_the_checks(
        tree: Path, full_runs: list[int], capsys: pytest.CaptureFixture[str],
        fmt: str) -> None:
    args = (str(tree), "--format", fmt)
    first = validate(capsys, *args)
    assert full_runs == [1]
    assert validate(capsys, *args) == first == uncached(capsys, *args)
    assert validate(capsys, *args) == first
    assert full_runs == [1, 1]  # the uncached run; both warm runs were answered


def test_an_edit_is_seen(tree: Path, full_runs: list[int],
                         capsys: pytest.CaptureFixture[str]) -> None:
    validate(capsys, str(tree))
    # Same size, same inode, an old mtime of its own: only the mtime tells.
    b = tree / "b.yaml"
    b.write_text(b.read_text().replace("Halted", "Hxlted"))
    os.utime(b, (HOUR_AGO + 5, HOUR_AGO + 5))
    got = validate(capsys, str(tree))
    assert got == uncached(capsys, str(tree))
    assert got[0] == 1 and "b.yaml" in got[1]
    assert full_runs[:1] == [1] and len(full_runs) == 3


def test_an_edit_within_the_racy_window_is_seen(tree: Path, full_runs: list[int],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Files written just now: the run may not vouch for their stats, as an edit within
    their mtime's granularity keeps mtime, size and inode."""
    b = tree / "b.yaml"
    b.write_text(vm("b", 2))
    st = b.stat()
    assert validate(capsys, str(tree))[0] == 0
    b.write_text(b.read_text().replace("Halted", "Hxlted"))
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (b.stat().st_mtime_ns, b.stat().st_size, b.stat().st_ino) == \
        (st.st_mtime_ns, st.st_size, st.st_ino)
    got = validate(capsys, str(tree))
    assert got[0] == 1 and got == uncached(capsys, str(tree))


@pytest.mark.parametrize("change", ["add", "remove", "rename", "add-folder"])
def test_a_changed_set_of_files_is_seen(tree: Path, full_runs: list[int],
                                        capsys: pytest.CaptureFixture[str],
                                        change: str) -> None:
    validate(capsys, str(tree))
    if change == "add":
        (tree / "d.yaml").write_text(vm("a", 4))  # a second "a": a duplicate name
    elif change == "remove":
        (tree / "b.yaml").unlink()
    elif change == "rename":
        (tree / "b.yaml").rename(tree / "sub" / "b2.yaml")
    else:
        (tree / "new").mkdir()
        (tree / "new" / "e.yaml").write_text(vm("e", 5))
    settle(tree)
    got = validate(capsys, str(tree))
    assert got == uncached(capsys, str(tree))
    assert len(full_runs) == 3
    if change == "add":
        assert got[0] == 1


@pytest.mark.parametrize("what", ["version", "schema"])
def test_a_changed_namespace_rechecks(tree: Path, full_runs: list[int], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch, what: str) -> None:
    validate(capsys, str(tree))
    validate_mod.cache_namespace.cache_clear()
    if what == "version":
        monkeypatch.setattr(settled, "__version__", "99.0.0")
        monkeypatch.setattr(validate_mod, "__version__", "99.0.0")
    else:
        schemas = tmp_path / "schemas"
        schemas.mkdir()
        for f in validate_mod.SCHEMA_DIR.glob("*.json"):
            (schemas / f.name).write_text(f.read_text() + "\n")
        monkeypatch.setattr("reconciler.check.SCHEMA_DIR", schemas)
        monkeypatch.setattr(validate_mod, "SCHEMA_DIR", schemas)
    try:
        validate(capsys, str(tree))
        assert len(full_runs) == 2
    finally:
        validate_mod.cache_namespace.cache_clear()


def test_only_plain_trees_take_the_settled_path(tree: Path) -> None:
    assert settled.plain_walk([str(tree)]) is not None
    assert settled.plain_walk([str(tree / "a.yaml")]) is None  # a file named directly
    (tree / "link.yaml").symlink_to(tree / "a.yaml")
    assert settled.plain_walk([str(tree)]) is None
    (tree / "link.yaml").unlink()
    (tree / ".virtsyncignore").write_text("sub/\n")
    assert settled.plain_walk([str(tree)]) is None


def test_trees_with_findings_are_reported_in_full(tree: Path, full_runs: list[int],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tree / "empty.yaml").write_text("# nothing yet\n")  # a warning: valid, one finding
    settle(tree)
    first = validate(capsys, str(tree))
    assert first[0] == 0 and "yaml.empty" not in first[1] and "empty.yaml" in first[1]
    assert validate(capsys, str(tree)) == first == uncached(capsys, str(tree))
    assert len(full_runs) == 3
