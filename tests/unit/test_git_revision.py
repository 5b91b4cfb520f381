"""`git_revision` answers without starting git only where git surely finds no repository
(issue 13: every watch cycle asks); everywhere else git is asked as before."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reconciler.tree.desired import git_revision


def _repo(root: Path) -> str:
    (root / "tree" / "deep").mkdir(parents=True)
    (root / "tree" / "deep" / "vm.yaml").write_text("a: 1\n")
    env = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "."], check=True)
    subprocess.run(["git", "-C", str(root), *env, "commit", "-qm", "one"], check=True)
    return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def test_outside_any_repository_there_is_no_revision(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    assert git_revision(tmp_path / "tree") == ""


def test_a_folder_deep_in_a_repository_has_its_commit(tmp_path: Path) -> None:
    head = _repo(tmp_path / "repo")
    assert git_revision(tmp_path / "repo" / "tree" / "deep") == head


def test_a_link_into_a_repository_has_its_commit(tmp_path: Path) -> None:
    """git finds the repository from the real folder, not the link's own parents."""
    head = _repo(tmp_path / "repo")
    (tmp_path / "outside").mkdir()
    link = tmp_path / "outside" / "tree"
    link.symlink_to(tmp_path / "repo" / "tree")
    assert git_revision(link) == head


def test_git_dir_in_the_environment_is_honoured(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    head = _repo(tmp_path / "repo")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "repo" / ".git"))
    assert git_revision(tmp_path / "elsewhere") == head
