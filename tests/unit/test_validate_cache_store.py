"""The incremental validation cache (SQLite, issue 13): whatever the cache holds, a
cached run reports exactly what a full, uncached check of the same tree reports; a
one-file edit re-checks that file alone; anything a result depends on re-checks all; a
damaged, locked or concurrently written database is never fatal and never trusted."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import reconciler.check.validate as validate_mod
from reconciler.check.validate import ValidationReport, validate_paths
from reconciler.tree import cache as cache_module
from reconciler.tree.loader import SourceFile
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
        firmware:
          uuid: {uuid}
        devices:
          interfaces:
          - name: default
            macAddress: "{mac}"
        memory:
          guest: 64Mi
      networks:
      - name: default
        pod: {{}}
"""


def vm(name: str, n: int, *, mac: int | None = None) -> str:
    return VM.format(name=name, uuid=f"00000000-0000-4000-8000-{n:012d}",
                     mac=f"52:54:00:00:00:{(n if mac is None else mac):02x}")


@pytest.fixture()
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    root = tmp_path / "repo"
    root.mkdir()
    for n, name in enumerate(("a", "b", "c", "d"), start=1):
        (root / f"{name}.yaml").write_text(vm(name, n))
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


def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "cache" / "validate.sqlite3"


def agree(root: Path) -> ValidationReport:
    """The cached run and a full uncached check of the same tree report the same."""
    cached = validate_paths([str(root)])
    full = validate_paths([str(root)], use_cache=False)
    assert cached.findings == full.findings
    assert list(cached.objects) == list(full.objects)
    assert len(cached.objects) == len(full.objects)
    return cached


def rules(report: ValidationReport) -> list[tuple[str, str]]:
    return sorted((Path(f.file).name, f.rule) for f in report.findings)


def test_edits_agree_with_a_full_check(tree: Path) -> None:
    """Each step changes the tree a different way; every cached answer equals a full one."""
    assert agree(tree).valid
    # a duplicate MAC appears (c takes a's) ...
    (tree / "c.yaml").write_text(vm("c", 3, mac=1))
    assert rules(agree(tree)) == [("c.yaml", "semantic.duplicate-mac")]
    # ... a third holder of it, then an unrelated file with a finding of its own ...
    (tree / "d.yaml").write_text(vm("d", 4, mac=1))
    (tree / "e.yaml").write_text(vm("e", 5).replace("64Mi", "lots"))
    assert not agree(tree).valid
    # ... the first holder leaves, the broken file is removed, a new file arrives ...
    (tree / "a.yaml").unlink()
    (tree / "e.yaml").unlink()
    (tree / "f.yaml").write_text(vm("f", 6))
    assert rules(agree(tree)) == [("d.yaml", "semantic.duplicate-mac")]
    # ... and the duplicate is resolved: the tree is valid again.
    (tree / "d.yaml").write_text(vm("d", 4))
    report = agree(tree)
    assert report.valid and len(report.objects) == 4


def test_renamed_object_and_moved_bytes_agree(tree: Path) -> None:
    """The same bytes under another path (a result keyed by content, not by path), and a
    rename that makes an object key unique again."""
    agree(tree)
    (tree / "b.yaml").write_text(vm("a", 2))  # a second VirtualMachine named a
    assert not agree(tree).valid
    shutil.move(tree / "b.yaml", tree / "z.yaml")
    moved = agree(tree)
    assert not moved.valid and {Path(f.file).name for f in moved.errors} <= {"a.yaml", "z.yaml"}
    (tree / "z.yaml").write_text(vm("z", 2))
    assert agree(tree).valid


def test_one_file_edit_reads_and_checks_that_file_alone(
        tree: Path, parses: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(20):
        (tree / f"x{i:02d}.yaml").write_text(vm(f"x{i:02d}", 100 + i))
    hour_ago = time.time() - 3600
    for f in tree.iterdir():  # out of the racy window: the stat index vouches for them
        os.utime(f, (hour_ago, hour_ago))
    validate_paths([str(tree)])
    reads: list[str] = []
    real_read = validate_mod.read_source

    def counting(src: SourceFile) -> bytes:
        reads.append(Path(src.display).name)
        return real_read(src)

    monkeypatch.setattr(validate_mod, "read_source", counting)
    validate_paths([str(tree)])
    assert reads == []
    for n, name in enumerate(("x07.yaml", "b.yaml")):
        parses.clear()
        reads.clear()
        (tree / name).write_text((tree / name).read_text() + "# edited\n")
        os.utime(tree / name, (hour_ago + n + 1, hour_ago + n + 1))
        validate_paths([str(tree)])
        assert parses == [name] and reads == [name]


def test_schema_change_rechecks_every_file(tree: Path, parses: list[str], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    validate_paths([str(tree)])
    schemas = tmp_path / "schemas"
    shutil.copytree(validate_mod.SCHEMA_DIR, schemas)
    first = sorted(schemas.glob("*.json"))[0]
    first.write_text(first.read_text() + "\n")
    validate_mod.cache_namespace.cache_clear()
    monkeypatch.setattr(validate_mod, "SCHEMA_DIR", schemas)
    try:
        parses.clear()
        validate_paths([str(tree)])
        assert sorted(parses) == ["a.yaml", "b.yaml", "c.yaml", "d.yaml"]
    finally:
        validate_mod.cache_namespace.cache_clear()


def test_rule_code_change_rechecks_every_file(tree: Path, parses: list[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed module a result depends on is a new namespace (here: the cache's own)."""
    validate_paths([str(tree)])
    validate_mod.cache_namespace.cache_clear()
    monkeypatch.setattr(validate_mod, "_CACHED_CODE", validate_mod._CACHED_CODE[:-1])
    try:
        parses.clear()
        validate_paths([str(tree)])
        assert len(parses) == 4
    finally:
        validate_mod.cache_namespace.cache_clear()


# Loaded by the per-file checks but no part of a result: the packages, the state dir's
# location, the digest that makes the namespace (core.digest, where it exists).
# (reconciler's own __init__ holds the version, which the namespace names.)
NOT_RESULT_CODE = {"", "check", "core", "tree", "core.statedir", "core.digest"}
EVERY_BRANCH = """\
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: a
  annotations:
    migration.virtsync.io/bandwidthPerMigration: 64Mi
spec:
  runStrategy: Halted
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices: {disks: [{name: d, disk: {bus: virtio}}]}
      volumes: [{name: d, hostDisk: {path: /srv/d.img, type: Disk}}]
---
apiVersion: virtsync.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes: [{name: n, uri: "test:///default", storageDir: /s, imageDir: /i, hostDiskDir: /s}]
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: &x dv, labels: {a: *x}}
spec: {source: {blank: {}}, storage: {resources: {requests: {storage: 1Gi}}}}
---
kind: Unknown
"""
CHECK_IT = """
import sys
from reconciler.check.validate import check_bytes
from reconciler.tree.settled import CACHED_CODE, ROOT
assert check_bytes(sys.stdin.buffer.read(), "x.yaml").result.findings  # overlap, kind
loaded = {m[len(ROOT) + 1:] for m in sys.modules if m == ROOT or m.startswith(ROOT + ".")}
print(",".join(sorted(loaded - set(CACHED_CODE) - {"check.validate"})))
"""


def test_every_module_a_result_depends_on_is_in_the_namespace() -> None:
    """A cached result is reused only while the code that made it is the same (a changed
    rule re-checks every file): every module the per-file checks load, on a file that
    takes every branch they have (a migration annotation, a hostDisk, a Cluster, a
    DataVolume, YAML anchors, an unknown kind), is digested in the namespace."""
    done = subprocess.run([sys.executable, "-c", CHECK_IT], input=EVERY_BRANCH.encode(),
                          capture_output=True, timeout=120, check=True)
    assert set(filter(None, done.stdout.decode().strip().split(","))) <= NOT_RESULT_CODE


def test_locked_database_is_not_fatal(tree: Path, parses: list[str], tmp_path: Path) -> None:
    validate_paths([str(tree)])
    (tree / "b.yaml").write_text(vm("b", 2, mac=1))  # duplicates a's MAC
    holder = sqlite3.connect(db(tmp_path), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock throughout
    try:
        parses.clear()
        report = validate_paths([str(tree)])
        assert rules(report) == [("b.yaml", "semantic.duplicate-mac")]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    parses.clear()
    assert rules(validate_paths([str(tree)])) == [("b.yaml", "semantic.duplicate-mac")]
    assert parses == ["b.yaml"]  # the cache survived the lock: only b's result is new
    assert rules(agree(tree)) == [("b.yaml", "semantic.duplicate-mac")]


def test_writer_that_lost_a_race_writes_nothing(tree: Path, monkeypatch: pytest.MonkeyPatch,
                                                ) -> None:
    """Another process writes between this run's read and its write (here: a nested run
    that adds a duplicate MAC): this run's now stale view must not overwrite it."""
    agree(tree)
    real = cache_module.ValidationCache.save
    raced: list[bool] = []

    def save(self: cache_module.ValidationCache, *args: Any, **kwargs: Any) -> None:
        if not raced:
            raced.append(True)
            (tree / "d.yaml").write_text(vm("d", 4, mac=1))
            validate_paths([str(tree)])
        real(self, *args, **kwargs)

    monkeypatch.setattr(cache_module.ValidationCache, "save", save)
    (tree / "c.yaml").write_text(vm("c", 30))
    validate_paths([str(tree)])
    monkeypatch.setattr(cache_module.ValidationCache, "save", real)
    assert rules(agree(tree)) == [("d.yaml", "semantic.duplicate-mac")]


def test_foreign_database_is_replaced(tree: Path, parses: list[str], tmp_path: Path) -> None:
    """A valid SQLite file of another format (an older virtsync) is rebuilt, not read."""
    path = db(tmp_path)
    path.parent.mkdir(parents=True)
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE results(x)")
    other.execute("PRAGMA user_version=3")
    other.commit()
    other.close()
    assert len(validate_paths([str(tree)]).objects) == 4
    parses.clear()
    assert len(validate_paths([str(tree)]).objects) == 4 and parses == []


def test_claims_of_two_trees_are_kept_apart(tree: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Two trees with the same display paths (each validated as `.` from its own
    directory) share the database, each scope's claims under its own id (format 8): an
    edit in one never drops or counts the other's claims, so a duplicate made later in
    the other is still found."""
    other = tmp_path / "other"
    other.mkdir()
    for n, name in enumerate(("a", "b", "c", "d"), start=1):
        (other / f"{name}.yaml").write_text(vm(name, n + 60, mac=n))  # a: MAC 1 here too
    here = Path(".")
    monkeypatch.chdir(tree)
    assert agree(here).valid
    monkeypatch.chdir(other)
    assert agree(here).valid
    # the first tree's a.yaml gives up MAC 1 ...
    monkeypatch.chdir(tree)
    (tree / "a.yaml").write_text(vm("a", 1, mac=9))
    assert agree(here).valid
    # ... the other's b.yaml takes MAC 1, which its own a.yaml still has: a duplicate
    monkeypatch.chdir(other)
    (other / "b.yaml").write_text(vm("b", 62, mac=1))
    assert rules(agree(here)) == [("b.yaml", "semantic.duplicate-mac")]
    # ... and in the first tree, c.yaml taking MAC 9 from a.yaml is one too.
    monkeypatch.chdir(tree)
    (tree / "c.yaml").write_text(vm("c", 3, mac=9))
    assert rules(agree(here)) == [("c.yaml", "semantic.duplicate-mac")]


def test_cold_write_leaves_the_claims_indexed(tree: Path, tmp_path: Path) -> None:
    """A cold write builds the claims indexes after the rows; they are there afterwards,
    and a warm write (rows in the table) keeps them."""
    def indexes() -> set[str]:
        with sqlite3.connect(db(tmp_path)) as conn:
            return {n for (n,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='claims'")}

    validate_paths([str(tree)])
    assert indexes() == {"claims_slot", "claims_path"}
    (tree / "a.yaml").write_text(vm("a", 9))
    validate_paths([str(tree)])
    assert indexes() == {"claims_slot", "claims_path"}


def _writer(root: str, state: str, name: str, rounds: int) -> None:
    import os

    os.environ["VIRTSYNC_STATE_DIR"] = state
    for i in range(rounds):
        (Path(root) / name).write_text(vm(name.split(".")[0], 50 + i, mac=200 + i))
        validate_paths([root])


def test_concurrent_writers_leave_a_consistent_cache(tree: Path, tmp_path: Path) -> None:
    """Four processes edit and validate the same tree at once; afterwards the cache still
    answers exactly what a full check does."""
    validate_paths([str(tree)])
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tree), str(tmp_path / "state"), f"w{i}.yaml",
                                               6)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    report = agree(tree)
    # the writers' last rounds all used the same MAC and UUID: w0 has them first
    assert {Path(f.file).name for f in report.errors} == {"w1.yaml", "w2.yaml", "w3.yaml"}
    assert agree(tree).findings == report.findings



def test_host_mode_documents_come_from_the_cache(tree: Path, parses: list[str]) -> None:
    """plan and apply (keep_manifests) read every document: a warm run parses nothing and
    gives the very documents a full parse gives, also after an edit and a new file."""
    def same() -> None:
        cached = validate_paths([str(tree)], keep_manifests=True)
        full = validate_paths([str(tree)], keep_manifests=True, use_cache=False)
        assert cached.manifests == full.manifests and cached.findings == full.findings

    (tree / "multi.yaml").write_text(vm("m1", 11) + "---\n" + vm("m2", 12))
    same()
    parses.clear()
    assert len(validate_paths([str(tree)], keep_manifests=True).manifests) == 6
    assert parses == []
    (tree / "b.yaml").write_text(vm("b", 2).replace("64Mi", "128Mi"))
    (tree / "n.yaml").write_text(vm("n", 14))
    same()
    parses.clear()
    same()
    assert sorted(parses) == ["a.yaml", "b.yaml", "c.yaml", "d.yaml", "multi.yaml", "n.yaml"]


def test_documents_with_a_secret_are_parsed_again_not_stored(
        tree: Path, parses: list[str], tmp_path: Path) -> None:
    """Rule 10: cloud-init userData never lands in the cache; that file alone is parsed."""
    secret = "CANARY-userdata-7f3e"
    (tree / "ci.yaml").write_text(vm("ci", 20).replace(
        "          interfaces:", "          disks:\n          - name: cloudinit\n"
        "            disk: {bus: virtio}\n          interfaces:").replace(
        "      networks:", "      volumes:\n      - name: cloudinit\n        cloudInitNoCloud:\n"
        f"          userData: '{secret}'\n      networks:"))
    full = validate_paths([str(tree)], keep_manifests=True, use_cache=False)
    assert full.valid
    validate_paths([str(tree)], keep_manifests=True)
    parses.clear()
    warm = validate_paths([str(tree)], keep_manifests=True)
    assert warm.manifests == full.manifests and parses == ["ci.yaml"]
    state = tmp_path / "state" / "cache"
    assert not any(secret.encode() in f.read_bytes() for f in state.iterdir())


def test_database_that_cannot_be_written_is_rebuilt(
        tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails for another reason than a lock (here: a table missing, as from
    an older build) rebuilds the database instead of leaving every later run cold."""
    hour_ago = time.time() - 3600
    for f in tree.iterdir():
        os.utime(f, (hour_ago, hour_ago))
    validate_paths([str(tree)], keep_manifests=True)
    broken = sqlite3.connect(db(tmp_path))
    broken.execute("DROP TABLE manifests")
    broken.commit()
    broken.close()
    other = str(tree) + "/"  # another scope: its first write tidies up, and fails
    validate_paths([other])
    validate_paths([other])  # cold, and written again
    reads: list[str] = []
    real_read = validate_mod.read_source

    def counting(src: SourceFile) -> bytes:
        reads.append(Path(src.display).name)
        return real_read(src)

    monkeypatch.setattr(validate_mod, "read_source", counting)
    assert validate_paths([other]).valid
    assert reads == []  # the stat index is back: nothing read
