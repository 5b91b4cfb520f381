"""The desired tree read through the validation cache (issue 13): a tree taken from the
cache equals one checked afresh (findings, objects, bodies, hashes), a changed file is
checked again, a file holding a secret is parsed again (its documents are never stored,
rule 10), and a result cached under another namespace (virtsync version, schema, rule
code) is never used."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import yaml
from watch_helpers import vm_body

from reconciler.check.validate import cache_namespace
from reconciler.tree.cache import DB_NAME
from reconciler.tree.desired_state import Snapshot, WorkdirTree

NS = "dsc"


def _vm(name: str, *, cores: int = 1, secret: bool = False, mac: str | None = None) -> dict:
    body = vm_body(name, NS)
    domain = body["spec"]["template"]["spec"]["domain"]
    domain["cpu"] = {"cores": cores}
    if mac is not None:
        domain["devices"]["interfaces"] = [{"name": "default", "masquerade": {},
                                            "macAddress": mac}]
        body["spec"]["template"]["spec"]["networks"] = [{"name": "default", "pod": {}}]
    if secret:
        domain["devices"].setdefault("disks", []).append({"name": "ci", "disk": {"bus": "virtio"}})
        body["spec"]["template"]["spec"].setdefault("volumes", []).append(
            {"name": "ci", "cloudInitNoCloud": {"userData": "#cloud-config\npassword: s3cret\n"}})
    return body


def _write(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "a.yaml").write_text(yaml.safe_dump(_vm("a", mac="02:00:00:00:00:01")))
    (root / "sub" / "b.yaml").write_text(yaml.safe_dump(_vm("b", secret=True)))
    # two documents, the second one with a schema error
    (root / "sub" / "c.yaml").write_text(yaml.safe_dump_all([
        _vm("c"), {**_vm("d"), "spec": {"runStrategy": 7}}]))
    # a cross-file claim made twice: the tree finding must come back from the cache too
    (root / "e.yaml").write_text(yaml.safe_dump(_vm("e", mac="02:00:00:00:00:01")))


def _same(a: Snapshot, b: Snapshot) -> None:
    assert a.findings == b.findings and a.findings
    assert a.by_key == b.by_key
    assert a.hashes == b.hashes
    assert a.files == b.files


@pytest.fixture()
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_a_tree_from_the_cache_equals_one_checked_afresh(tmp_path: Path, state: Path) -> None:
    root = tmp_path / "t"
    _write(root)
    fresh = WorkdirTree(str(root))  # no cache at all
    assert fresh.refresh_all() == 4
    first = WorkdirTree(str(root), use_cache=True)  # checks, and fills the cache
    assert first.refresh_all() == 4
    assert (state / "cache" / DB_NAME).exists()
    again = WorkdirTree(str(root), use_cache=True)  # from the cache
    assert again.refresh_all() == 4  # taken from the cache: still files the tree changed by
    _same(fresh.snapshot(), first.snapshot())
    _same(fresh.snapshot(), again.snapshot())
    with sqlite3.connect(state / "cache" / DB_NAME) as db:
        stored = [t for (t,) in db.execute("SELECT manifests FROM manifests")]
    assert stored and not any("s3cret" in t for t in stored)  # rule 10


def test_a_changed_file_is_checked_again(tmp_path: Path, state: Path) -> None:
    root = tmp_path / "t"
    _write(root)
    WorkdirTree(str(root), use_cache=True).refresh_all()
    (root / "a.yaml").write_text(yaml.safe_dump({**_vm("a"), "spec": {"runStrategy": 9}}))
    tree = WorkdirTree(str(root), use_cache=True)
    tree.refresh_all()
    plain = WorkdirTree(str(root))
    plain.refresh_all()
    _same(plain.snapshot(), tree.snapshot())
    assert any(f.file.endswith("a.yaml") for f in tree.snapshot().findings)


def test_a_result_cached_under_another_namespace_is_not_used(
        tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "a.yaml").write_text(yaml.safe_dump({**_vm("a"), "spec": {"runStrategy": 9}}))
    # Another virtsync (version, schema or rule code) cached this content as clean.
    monkeypatch.setattr("reconciler.tree.doccache.cache_namespace", lambda _: "other")
    WorkdirTree(str(root), use_cache=True).refresh_all()
    with sqlite3.connect(state / "cache" / DB_NAME) as db:
        db.execute("UPDATE results SET result=? WHERE namespace='other'",
                   ('[[[0,"VirtualMachine","dsc","a"]],[],[],1]',))
    other = WorkdirTree(str(root), use_cache=True)
    other.refresh_all()
    assert other.snapshot().valid  # the poisoned row is what that namespace sees
    monkeypatch.setattr("reconciler.tree.doccache.cache_namespace", cache_namespace)
    ours = WorkdirTree(str(root), use_cache=True)
    ours.refresh_all()
    assert not ours.snapshot().valid


def test_a_read_of_just_the_saved_files_leaves_the_cache_alone(tmp_path: Path,
                                                                state: Path) -> None:
    """watch's save → applied cycle: the saved file's new content is not in the cache, so
    the partial re-read neither asks nor writes it (latency); a whole read does both."""
    root = tmp_path / "t"
    _write(root)
    tree = WorkdirTree(str(root), use_cache=True)
    tree.refresh_all()
    db = state / "cache" / DB_NAME

    def rows() -> int:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    before = rows()
    (root / "a.yaml").write_text(yaml.safe_dump(_vm("a", cores=2, mac="02:00:00:00:00:01")))
    assert tree.refresh_paths([str(root / "a.yaml")]) == 1
    assert rows() == before
    assert WorkdirTree(str(root), use_cache=True).refresh_all() == 4
    assert rows() == before + 1
