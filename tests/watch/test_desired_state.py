"""The incremental desired tree agrees with a full validation after every edit, re-reads
only what changed, and in git mode sees commits only."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import yaml
from watch_helpers import vm_body

from reconciler.check.validate import validate_paths
from reconciler.core.model import ObjectKey
from reconciler.tree.desired_state import GitTree, WorkdirTree, changed_keys

NS = "ds"


def _vm(name: str, *, mac: str | None = None, label: str = "a", dv: str | None = None) -> str:
    body = vm_body(name, NS, labels={"l": label})
    if dv is not None:  # owns a DataVolume (one owner per name and namespace, rule 13)
        body["spec"]["dataVolumeTemplates"] = [{"metadata": {"name": dv}, "spec": {
            "source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "1Mi"}}}}}]
    if mac is not None:
        body["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"] = [
            {"name": "default", "masquerade": {}, "macAddress": mac}]
        body["spec"]["template"]["spec"]["networks"] = [{"name": "default", "pod": {}}]
    return yaml.safe_dump(body, sort_keys=False)


def _agrees(tree: WorkdirTree, root: Path) -> set[str]:
    """Asserts agreement; returns the rules of the findings seen."""
    snap = tree.snapshot()
    full = validate_paths([str(root)], use_cache=False, keep_manifests=True)
    assert snap.findings == full.findings
    assert snap.valid == full.valid
    if full.valid:
        assert {m.key: m.body for m in full.manifests} == {
            k: m.body for k, m in snap.by_key.items()}
    return {f.rule for f in snap.findings}


def test_incremental_snapshot_equals_full_validation_through_random_edits(
        tmp_path: Path) -> None:
    root = tmp_path / "t"
    (root / "sub").mkdir(parents=True)
    names = [f"vm{i}" for i in range(10)]
    for i, n in enumerate(names):
        folder = root / "sub" if i % 2 else root
        (folder / f"{n}.yaml").write_text(_vm(n, mac=f"02:00:00:00:00:{i:02x}"))
    tree = WorkdirTree(str(root))
    assert tree.refresh_all() == 10
    _agrees(tree, root)

    rng = random.Random(7)
    rules: set[str] = set()
    valid_states = 0
    paths = sorted(root.rglob("*.yaml"))
    for step in range(120):
        path = rng.choice(paths)
        op = rng.choice(["label", "broken", "dup-mac", "dup-name", "dup-dv", "delete",
                         "comment", "restore"])
        name = path.stem
        if op == "label":
            path.write_text(_vm(name, label=f"s{step}"))
        elif op == "broken":
            path.write_text("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nspec: [\n")
        elif op == "dup-mac":
            path.write_text(_vm(name, mac="02:00:00:00:00:01"))
        elif op == "dup-dv":
            path.write_text(_vm(name, dv="shared"))
        elif op == "dup-name":
            path.write_text(_vm("vm3"))
        elif op == "delete":
            path.unlink(missing_ok=True)
        elif op == "comment":
            if path.exists():
                path.write_text("# note\n" + path.read_text())
        else:
            path.write_text(_vm(name))
        assert tree.refresh_paths([str(path)]) is not None
        if step % 20 == 19:  # heal everything: duplicate claims must drop out incrementally
            for p in paths:
                p.write_text(_vm(p.stem))
            assert tree.refresh_paths([str(p) for p in paths]) is not None
        seen = _agrees(tree, root)
        rules |= seen
        valid_states += not seen
    # The walk went through broken, duplicated and valid states (the check is not vacuous).
    assert valid_states > 0
    assert {"yaml.syntax", "semantic.duplicate-mac", "semantic.duplicate-object",
            "semantic.duplicate-datavolume"} <= rules, rules


def test_only_changed_files_are_read_again(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"vm{i}.yaml").write_text(_vm(f"vm{i}"))
    tree = WorkdirTree(str(tmp_path))
    assert tree.refresh_all() == 5
    assert tree.refresh_all() == 0  # stat unchanged: nothing read
    path = tmp_path / "vm2.yaml"
    os.utime(path, ns=(1, 1))  # touched, same content: read, hashed, not re-checked
    assert tree.refresh_all() == 0
    before = tree.snapshot().hashes
    path.write_text(_vm("vm2", label="new"))
    assert tree.refresh_paths([str(path)]) == 1
    after = tree.snapshot().hashes
    assert changed_keys(before, after) == {ObjectKey("VirtualMachine", NS, "vm2")}
    path.write_text("# only a comment\n" + path.read_text())
    assert tree.refresh_paths([str(path)]) == 1
    assert changed_keys(after, tree.snapshot().hashes) == set()


def test_events_outside_the_tree_or_on_temp_files_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "vm0.yaml").write_text(_vm("vm0"))
    tree = WorkdirTree(str(tmp_path))
    tree.refresh_all()
    for junk in ("notes.txt", ".vm0.yaml.swp", "vm0.yaml~", ".git/HEAD", ".#vm0.yaml"):
        assert tree.classify_event(str(tmp_path / junk)) is None
    assert tree.classify_event("/elsewhere/x.yaml") is None
    (tmp_path / "folder").mkdir()
    assert tree.classify_event(str(tmp_path / "folder")) == ""  # a folder: walk it all


def test_empty_tree_is_invalid(tmp_path: Path) -> None:
    tree = WorkdirTree(str(tmp_path))
    tree.refresh_all()
    snap = tree.snapshot()
    assert not snap.valid and snap.errors[0].rule == "tree.no-objects"


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def test_git_tree_reads_commits_and_only_changed_blobs(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "vms").mkdir(parents=True)
    for i in range(4):
        (repo / "vms" / f"vm{i}.yaml").write_text(_vm(f"vm{i}"))
    (repo / "other.yaml").write_text("not: a spec outside the watched folder\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    tree = GitTree(str(repo / "vms"))
    assert tree.refresh() == 4
    snap = tree.snapshot()
    assert snap.valid and snap.revision == _git(repo, "rev-parse", "HEAD")
    assert len(snap.by_key) == 4

    (repo / "vms" / "vm1.yaml").write_text("half: [written\n")  # never committed
    assert tree.refresh() == 0
    assert tree.snapshot().valid

    (repo / "vms" / "vm1.yaml").write_text(_vm("vm1", label="b"))
    (repo / "vms" / "vm3.yaml").unlink()
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "two")
    assert tree.refresh() == 2  # one changed blob, one removed file
    snap2 = tree.snapshot()
    assert changed_keys(snap.hashes, snap2.hashes) == {
        ObjectKey("VirtualMachine", NS, "vm1"), ObjectKey("VirtualMachine", NS, "vm3")}

    other = GitTree(str(repo / "vms"), ref="HEAD~1")
    other.refresh()
    assert other.snapshot().hashes == snap.hashes


def test_virtsyncignore_holds_for_file_events_too(tmp_path: Path) -> None:
    (tmp_path / "vm0.yaml").write_text(_vm("vm0"))
    (tmp_path / "ci").mkdir()
    (tmp_path / ".virtsyncignore").write_text("ci/\nkustomization.yaml\n")
    tree = WorkdirTree(str(tmp_path))
    tree.refresh_all()
    for ignored in ("ci/workflow.yaml", "kustomization.yaml"):
        (tmp_path / ignored).write_text("not: a spec\n")
        assert tree.classify_event(str(tmp_path / ignored)) is None
        assert tree.refresh_paths([str(tmp_path / ignored)]) == 0
    assert tree.snapshot().valid
    assert tree.classify_event(str(tmp_path / ".virtsyncignore")) == ""


def test_a_whole_read_keeps_the_walks_stat_and_still_sees_every_edit(tmp_path: Path) -> None:
    """refresh_all takes each walked file's (mtime, size, inode) from the walk (issue 13):
    the same as a stat of the file; an edit that keeps the size (another mtime) or a
    file replaced by another inode with the same size and mtime is read again."""
    from reconciler.tree.desired_state import _stat

    (tmp_path / "sub").mkdir()
    files = [tmp_path / "a.yaml", tmp_path / "sub" / "b.yaml"]
    for i, f in enumerate(files):
        f.write_text(_vm(f"vm{i}"))
    tree = WorkdirTree(str(tmp_path))
    assert tree.refresh_all() == 2
    assert sorted(s.stat for s in tree._files.values()) == sorted(_stat(f) for f in files)

    def label(name: str) -> object:
        return tree.snapshot().by_key[ObjectKey("VirtualMachine", NS, name)].body[
            "metadata"]["labels"]

    os.utime(files[0], ns=(1, 1))
    files[0].write_text(_vm("vm0").replace("l: a", "l: b"))  # same size, new mtime
    assert tree.refresh_all() == 1
    assert label("vm0") == {"l": "b"}
    old = os.stat(files[1])
    new = tmp_path / "sub" / "b.new"
    new.write_text(_vm("vm1").replace("l: a", "l: c"))
    os.utime(new, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(new, files[1])  # only the inode tells
    assert tree.refresh_all() == 1
    assert label("vm1") == {"l": "c"}
    assert tree.refresh_all() == 0
