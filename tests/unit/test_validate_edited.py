"""A warm `validate` after a few files changed (check/incremental.py `edited`, issue 13):
only the changed buckets' file rows are read and only their changed files checked, yet
every cross-file check (unique names, UUIDs, MACs; hostDisk paths against the Cluster)
still sees the files of every other bucket. Through the CLI, each answer must be what an
uncached run prints, in every format, with the same exit code."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import reconciler.check.validate as validate_mod
from reconciler.check import incremental
from reconciler.check.validate import ValidationReport
from reconciler.cli import main
from reconciler.tree import cache as cache_module
from reconciler.tree.settled import bucket_of

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
        devices:
          interfaces:
          - name: default
            macAddress: "52:54:00:00:01:{mac:02x}"
        memory:
          guest: 64Mi
      networks:
      - name: default
        pod: {{}}
"""
HOST_VM = """apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: {name}
spec:
  runStrategy: Halted
  template:
    spec:
      domain:
        devices:
          disks:
          - name: data
            disk: {{}}
        memory:
          guest: 64Mi
      volumes:
      - name: data
        hostDisk:
          path: /srv/vm-hostdisks/{name}.img
          type: Disk
"""
CLUSTER = """apiVersion: virtsync.io/v1alpha1
kind: Cluster
metadata:
  name: local
spec:
  nodes:
  - name: local
    uri: test:///default
    storageDir: /var/lib/virtsync/storage
    imageDir: /var/lib/virtsync/images
    hostDiskDir: {root}
"""
HOUR_AGO = time.time() - 3600
FILES = 40


def vm(name: str, n: int, *, mac: int | None = None) -> str:
    return VM.format(name=name, n=n, mac=n if mac is None else mac)


@pytest.fixture()
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """FILES VMs, a Cluster and a VM with a hostDisk path, settled (written an hour ago)."""
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    for n in range(FILES):
        (root / ("sub" if n % 3 else "") / f"vm-{n:02d}.yaml").write_text(vm(f"vm-{n:02d}", n))
    (root / "cluster.yaml").write_text(CLUSTER.format(root="/srv/vm-hostdisks"))
    (root / "data.yaml").write_text(HOST_VM.format(name="data"))
    settle(root)
    return root


def settle(root: Path) -> None:
    for f in root.rglob("*"):
        os.utime(f, (HOUR_AGO, HOUR_AGO))


@pytest.fixture()
def paths_taken(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Per warm run not answered from the settled row: "edited" or "full"."""
    taken: list[str] = []
    real_full = validate_mod.validate_paths
    real_edited = incremental.edited

    def full(*args: Any, **kwargs: Any) -> ValidationReport:
        taken.append("full")
        return real_full(*args, **kwargs)

    def edited(*args: Any, **kwargs: Any) -> incremental.EditedTree | None:
        found = real_edited(*args, **kwargs)
        if found is not None:
            taken.append("edited")
        return found

    monkeypatch.setattr(validate_mod, "validate_paths", full)
    monkeypatch.setattr(incremental, "edited", edited)
    return taken


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["validate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def same_as_uncached(capsys: pytest.CaptureFixture[str], root: Path,
                     taken: list[str]) -> tuple[int, str, str]:
    """Validate warm in every format; each answer is the uncached one. Returns the JSON
    answer (it names the rules)."""
    got = {}
    for fmt in ("text", "github", "json"):
        got[fmt] = run(capsys, str(root), "--format", fmt)
        assert got[fmt] == run(capsys, "--no-cache", str(root), "--format", fmt), fmt
    taken.clear()
    return got["json"]


def first_warm(capsys: pytest.CaptureFixture[str], root: Path, taken: list[str]) -> str:
    """Which path answered the first warm run after a change (then compared)."""
    warm = run(capsys, str(root), "--format", "json")
    which = taken[-1] if taken else "settled"
    assert warm == run(capsys, "--no-cache", str(root), "--format", "json")
    taken.clear()
    return which


def prime(capsys: pytest.CaptureFixture[str], root: Path, taken: list[str]) -> None:
    assert run(capsys, str(root))[0] == 0
    taken.clear()


def test_the_files_in_use_sit_in_different_buckets() -> None:
    """What the tests below rely on: the files they pair live in different buckets."""
    names = ["vm-00.yaml", "sub/vm-01.yaml", "sub/vm-05.yaml", "vm-09.yaml", "cluster.yaml",
             "data.yaml"]
    assert len({bucket_of(name) for name in names}) == len(names)


@pytest.mark.parametrize("holder", ["sub/vm-01.yaml", "vm-09.yaml"])
def test_an_edit_that_makes_a_cross_file_duplicate_is_reported(
        tree: Path, paths_taken: list[str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, holder: str) -> None:
    """The edited file takes a MAC (then a name) another, unchanged bucket's file holds."""
    monkeypatch.chdir(tree)  # display paths relative to the tree, as in a checkout
    prime(capsys, Path("."), paths_taken)
    n = int(holder[-7:-5])
    (tree / "sub" / "vm-05.yaml").write_text(vm("vm-05", 5, mac=n))
    assert first_warm(capsys, Path("."), paths_taken) == "edited"
    code, out, _ = same_as_uncached(capsys, Path("."), paths_taken)
    assert code == 1 and "semantic.duplicate-mac" in out and holder in out
    (tree / "sub" / "vm-05.yaml").write_text(vm(f"vm-{n:02d}", 5))  # now the name
    assert first_warm(capsys, Path("."), paths_taken) == "edited"
    code, out, _ = same_as_uncached(capsys, Path("."), paths_taken)
    assert code == 1 and "duplicate-mac" not in out and "vm-05.yaml" in out
    (tree / "sub" / "vm-05.yaml").write_text(vm("vm-05", 5))  # resolved
    assert first_warm(capsys, Path("."), paths_taken) == "edited"
    assert same_as_uncached(capsys, Path("."), paths_taken)[0] == 0


def test_removing_or_renaming_a_holder_resolves_the_duplicate(
        tree: Path, paths_taken: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    (tree / "vm-09.yaml").write_text(vm("vm-09", 9, mac=0))  # vm-00's MAC
    settle(tree)
    assert run(capsys, str(tree))[0] == 1
    paths_taken.clear()
    (tree / "vm-00.yaml").rename(tree / "sub" / "vm-00-moved.yaml")
    assert first_warm(capsys, tree, paths_taken) == "edited"
    code, out, _ = same_as_uncached(capsys, tree, paths_taken)
    assert code == 1 and "duplicate-mac" in out
    (tree / "sub" / "vm-00-moved.yaml").unlink()  # its bucket is empty now
    assert first_warm(capsys, tree, paths_taken) == "edited"
    assert same_as_uncached(capsys, tree, paths_taken)[0] == 0


def test_an_edit_of_the_cluster_rechecks_hostdisk_paths_of_unchanged_files(
        tree: Path, paths_taken: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """data.yaml is unchanged, in another bucket; the Cluster's new hostDiskDir puts its
    hostDisk path outside (rule 14)."""
    prime(capsys, tree, paths_taken)
    (tree / "cluster.yaml").write_text(CLUSTER.format(root="/srv/elsewhere"))
    assert first_warm(capsys, tree, paths_taken) == "edited"
    code, out, _ = same_as_uncached(capsys, tree, paths_taken)
    assert code == 1 and "semantic.hostdisk-outside" in out and "data.yaml" in out
    (tree / "cluster.yaml").write_text(CLUSTER.format(root="/srv/vm-hostdisks"))
    assert first_warm(capsys, tree, paths_taken) == "edited"
    assert same_as_uncached(capsys, tree, paths_taken)[0] == 0


def test_an_edit_with_findings_of_its_own_and_a_new_file(
        tree: Path, paths_taken: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    prime(capsys, tree, paths_taken)
    (tree / "sub" / "vm-05.yaml").write_text(vm("vm-05", 5).replace("64Mi", "lots"))
    (tree / "new.yaml").write_text("# nothing yet\n")  # a warning: no objects in it
    assert first_warm(capsys, tree, paths_taken) == "edited"
    code, out, _ = same_as_uncached(capsys, tree, paths_taken)
    assert code == 1 and "vm-05.yaml" in out and "new.yaml" in out
    # The broken file's finding stays reported while an unrelated file changes.
    (tree / "vm-09.yaml").write_text(vm("vm-09", 9).replace("Halted", "Always"))
    assert first_warm(capsys, tree, paths_taken) == "edited"
    assert same_as_uncached(capsys, tree, paths_taken)[:2] == (code, out)


def test_the_edit_reads_only_the_changed_buckets_rows(
        tree: Path, paths_taken: list[str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    prime(capsys, tree, paths_taken)
    read: list[int] = []
    real = cache_module.ValidationCache._read_partial

    def counting(self: cache_module.ValidationCache, current: Any) -> bool:
        ok = real(self, current)
        read.append(len(self.rows))
        return ok

    monkeypatch.setattr(cache_module.ValidationCache, "_read_partial", counting)
    (tree / "sub" / "vm-05.yaml").write_text(vm("vm-05", 5, mac=99))
    assert first_warm(capsys, tree, paths_taken) == "edited"
    assert read[0] <= 3  # vm-05's bucket, not FILES + 2 rows


def test_many_changed_buckets_take_the_full_path(
        tree: Path, paths_taken: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    prime(capsys, tree, paths_taken)
    for n in range(0, FILES, 3):
        (tree / f"vm-{n:02d}.yaml").write_text(vm(f"vm-{n:02d}", n, mac=n + 100))
    (tree / "vm-03.yaml").write_text(vm("vm-03", 3, mac=100))  # vm-00's new MAC
    assert len({bucket_of(f"vm-{n:02d}.yaml") for n in range(0, FILES, 3)}) > 3
    old = cache_module.PARTIAL_MAX
    try:
        cache_module.PARTIAL_MAX = 3
        assert first_warm(capsys, tree, paths_taken) == "full"
    finally:
        cache_module.PARTIAL_MAX = old
    code, out, _ = same_as_uncached(capsys, tree, paths_taken)
    assert code == 1 and "duplicate-mac" in out


def test_a_cache_without_bucket_rows_takes_the_full_path(
        tree: Path, paths_taken: list[str], capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    prime(capsys, tree, paths_taken)
    db = sqlite3.connect(tmp_path / "state" / "cache" / cache_module.DB_NAME)
    db.execute("DELETE FROM buckets")
    db.commit()
    db.close()
    (tree / "sub" / "vm-05.yaml").write_text(vm("vm-05", 5, mac=0))
    assert first_warm(capsys, tree, paths_taken) == "full"
    (tree / "sub" / "vm-05.yaml").write_text(vm("vm-05", 5))
    assert first_warm(capsys, tree, paths_taken) == "edited"  # the full run wrote them


def test_ignore_unknown_keeps_its_own_answers(
        tree: Path, paths_taken: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """The option is part of the cache's namespace: each setting has its own stored tree,
    and an edit is answered for each as an uncached run with that option would."""
    for flag in ((), ("--ignore-unknown",)):
        assert run(capsys, str(tree), *flag)[0] == 0
    paths_taken.clear()
    (tree / "sub" / "vm-05.yaml").write_text(
        vm("vm-05", 5) + "---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n"
        "  name: w\n")
    for flag, code in (((), 1), (("--ignore-unknown",), 0)):
        warm = run(capsys, str(tree), *flag)
        assert paths_taken == ["edited"] and warm[0] == code
        assert warm == run(capsys, "--no-cache", str(tree), *flag)
        paths_taken.clear()


@pytest.mark.parametrize("damage", ["tree-row", "file"])
def test_a_damaged_cache_is_never_fatal(
        tree: Path, paths_taken: list[str], capsys: pytest.CaptureFixture[str],
        tmp_path: Path, damage: str) -> None:
    """A trees row that does not decode, or a file that is no database: each edit is
    answered as an uncached run would answer it, and the cache is rebuilt (the damaged
    database is removed by the run that finds it, made anew by the next)."""
    prime(capsys, tree, paths_taken)
    path = tmp_path / "state" / "cache" / cache_module.DB_NAME
    if damage == "tree-row":
        db = sqlite3.connect(path)
        db.execute("UPDATE trees SET findings='not json'")
        db.commit()
        db.close()
    else:
        for name in (path.name + "-wal", path.name + "-shm"):
            (path.parent / name).unlink(missing_ok=True)
        path.write_bytes(b"\x00garbage" * 1000)
    (tree / "sub" / "vm-05.yaml").write_text(vm("vm-05", 5, mac=0))
    assert first_warm(capsys, tree, paths_taken) == "full"
    (tree / "sub" / "vm-05.yaml").write_text(vm("vm-05", 5))
    assert first_warm(capsys, tree, paths_taken) == ("full" if damage == "tree-row"
                                                     else "edited")
    (tree / "sub" / "vm-05.yaml").write_text(vm("vm-05", 5, mac=1))
    assert first_warm(capsys, tree, paths_taken) == "edited"


# What a one-file edit must not load (issue 13: every module is start-up paid by the warm
# run): the VM model's typed parts (core.vmspec, with core.power), quantities (fractions),
# ruamel's round-trip parser (only a finding's position needs it).
EDIT_NEVER = ("reconciler.core.vmspec", "reconciler.core.power", "reconciler.core.quantity",
              "fractions", "ruamel.yaml", "reconciler.tree.positions")
PROBE = f"""
import sys
from reconciler.cli import main
print("CODE", main(sys.argv[1:]))
print("LOADED", ",".join(m for m in {EDIT_NEVER!r} + ("reconciler.check.schema",)
                         if m in sys.modules))
"""


def test_an_edit_is_checked_without_the_vm_model(tree: Path, tmp_path: Path) -> None:
    """The edited file is checked (the schema is loaded) and found valid, in a process
    that loaded none of EDIT_NEVER: a VM's hostDisk paths are read without the VM model,
    a migration annotation's quantity only when one is written."""
    env = dict(os.environ, VIRTSYNC_STATE_DIR=str(tmp_path / "state"))

    def probe() -> tuple[str, str]:
        done = subprocess.run([sys.executable, "-c", PROBE, "validate", str(tree)],
                              capture_output=True, text=True, env=env, timeout=120)
        lines = dict(ln.split(" ", 1) for ln in done.stdout.splitlines() if " " in ln)
        return lines.get("CODE", done.stderr), lines.get("LOADED", "")

    assert probe()[0] == "0"
    (tree / "sub" / "vm-05.yaml").write_text(vm("vm-05", 5) + "  # edited\n")
    assert probe() == ("0", "reconciler.check.schema")
