"""One desired-state library (issue 9, items 4 and 6): the working tree and a commit are
read through `reconciler.tree.source`, give the same desired state, and `watch` drives
either through the `TreeSource` protocol alone."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from parse_count import count_parses, parsed_more_than_once
from watch_helpers import Rig, make_rig

from reconciler.core.model import ObjectKey
from reconciler.planning.reconcile import load_desired
from reconciler.tree.desired import body_hash, desired_hash
from reconciler.tree.source import Desired, read_desired, read_tree

SMALL = ("apiVersion: instancetype.kubevirt.io/v1beta1\n"
         "kind: VirtualMachineClusterInstancetype\n"
         "metadata:\n  name: small\nspec:\n  cpu:\n    guest: 1\n  memory:\n    guest: 1Gi\n")


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), "-c", "user.email=t@virtsync.invalid",
                    "-c", "user.name=test", *args], check=True, capture_output=True)


def _commit(root: Path, message: str) -> None:
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", message)


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    r = make_rig(tmp_path, vms=3)
    _git(r.tree, "init", "-q", "-b", "main")
    _commit(r.tree, "first")
    yield r
    r.cleanup()


def test_work_tree_and_commit_give_the_same_desired_state(rig: Rig) -> None:
    # A VM sized by an instancetype gets its revisionName pinned: its hash is not the
    # file's body hash, so the desired hash must be computed from the pinned body.
    rig.write("small.yaml", SMALL)
    text = (rig.tree / "vm1.yaml").read_text()
    sized = text.replace("spec:\n", "spec:\n  instancetype:\n    name: small\n", 1)
    rig.write("vm1.yaml", sized.replace(
        "        cpu:\n          cores: 1\n        memory:\n          guest: 64Mi\n", ""))
    _commit(rig.tree, "sized")
    work = read_desired(str(rig.tree))
    committed = read_desired(str(rig.tree), "HEAD")
    host = load_desired([str(rig.tree)])
    def objects(d: Desired) -> list[tuple[ObjectKey, object]]:
        return [(m.key, m.body) for m in d.manifests]

    assert objects(work) == objects(committed) == objects(host)
    assert work.manifests == host.manifests  # the same read: the same file names too
    assert work.root == committed.root == host.root
    assert work.revision == committed.revision != ""
    expected = desired_hash((m.key, body_hash(m.body)) for m in work.manifests)
    assert work.desired_hash == committed.desired_hash == host.desired_hash == expected
    pinned = {m.name: m.body["spec"] for m in work.manifests if m.kind == "VirtualMachine"}
    assert "revisionName" in str(pinned["vm1"])


def test_an_older_commit_is_read_as_it_was(rig: Rig) -> None:
    (rig.tree / "vm2.yaml").unlink()
    _commit(rig.tree, "vm2 gone")
    names = {m.name for m in read_desired(str(rig.tree), "HEAD~1").manifests}
    assert {"vm0", "vm1", "vm2"} <= names
    assert "vm2" not in {m.name for m in read_desired(str(rig.tree)).manifests}
    assert read_tree(str(rig.tree), "HEAD").snapshot().valid


def test_git_watch_prunes_a_committed_deletion_at_once(rig: Rig) -> None:
    """A commit is read whole, so its deletion is certain: no wait for a resync (the
    working tree defers it: tests/watch/test_watch_testdriver.py::test_prune_is_opt_in)."""
    w = rig.make_watcher(git=True, prune=True)
    assert w.startup().result == "ok"
    (rig.tree / "vm2.yaml").unlink()
    _commit(rig.tree, "vm2 gone")
    report = w.on_change({str(rig.tree / ".git" / "refs" / "heads" / "main")})
    assert [(o.key.name, o.word) for o in report.outcomes] == [("vm2", "deleted")]
    assert sorted(rig.domains()) == [f"{rig.ns}_vm0", f"{rig.ns}_vm1"]


def test_git_watch_parses_each_committed_file_once(rig: Rig,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    parses = count_parses(monkeypatch)
    w = rig.make_watcher(git=True)
    assert w.startup().result == "ok"
    rig.write_vm("vm1", labels={"tier": "web"})
    _commit(rig.tree, "label vm1")
    assert w.on_change(set()).result == "ok"
    w.resync()
    assert parsed_more_than_once(parses) == {}
    assert sorted(Path(d).name for d, _ in parses) == [
        "cluster.yaml", "vm0.yaml", "vm1.yaml", "vm1.yaml", "vm2.yaml"]

