"""`plan --base` answers an unchanged, settled tree against unchanged commits from the plan
a run stored (reconciler/planning/settledplan.py, issue 13); a change to anything that plan
depends on makes the next run plan in full, and prints what a full plan prints."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from plan_helpers import vm
from plan_repo import Repo

from reconciler.planning import gitplan, settledplan

Run = Callable[..., tuple[int, str, str]]


def settle(root: Path, age: float = 60.0) -> None:
    """Every spec older than the racy window (as files are a while after a checkout)."""
    when = time.time() - age
    for path in (root / "vms").rglob("*.yaml"):
        os.utime(path, (when, when))


@pytest.fixture
def full_plans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths each full (not stored) git-mode plan was made for."""
    made: list[str] = []
    real = gitplan.plan_from_git

    def counted(path: str, *args: object, **kwargs: object) -> gitplan.GitPlan:
        made.append(path)
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(gitplan, "plan_from_git", counted)
    return made


@pytest.fixture
def pr(repo: Repo) -> str:
    """A base commit on main; branch pr with one VM changed in the work tree, settled."""
    repo.write({"vms/a.yaml": vm("a"), "vms/b.yaml": vm("b"), "vms/c.yaml": vm("c")})
    base = repo.commit("base")
    repo.git("checkout", "-q", "-b", "pr")
    repo.write({"vms/b.yaml": vm("b", cores=4)})
    settle(repo.root)
    (repo.root.parent / "base").write_text(base)
    return base


@pytest.mark.parametrize("stored_as", ["text", "markdown", "json"])
def test_an_unchanged_tree_is_planned_once_then_answered_from_the_stored_plan(
        repo: Repo, pr: str, run_cli: Run, full_plans: list[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, stored_as: str) -> None:
    first = run_cli("plan", "vms", "--base", pr, "-o", stored_as)
    assert first[0] == 1 and "vms/b.yaml" in first[1], first[2]
    assert run_cli("plan", "vms", "--base", pr, "-o", stored_as) == first
    assert full_plans == ["vms"]
    assert (tmp_path / "state" / "cache" / settledplan.DB_NAME).is_file()
    # Every rendering, exit code, saved plan and step summary as a full plan gives
    # them: printed as stored, or (saved, coloured, under GitHub Actions) decoded.
    for fmt in ("text", "markdown", "json"):
        for extra in ([], ["--detailed-exitcode"], ["--color", "always"], ["--out-file"],
                      ["github"]):
            seen = [_run_saving(run_cli, tmp_path, monkeypatch, [*extra, "-o", fmt, *nocache])
                    for nocache in ([], ["--no-cache"])]
            assert seen[0] == seen[1], (fmt, extra)
    assert full_plans == ["vms"] + ["vms"] * 15  # the --no-cache runs only


def _run_saving(run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                args: list[str]) -> tuple[object, ...]:
    """`plan vms --base pr` with `args`, where "--out-file" saves to a file and "github"
    runs as under GitHub Actions; what it printed, and the files it wrote."""
    written = tmp_path / "written"
    written.unlink(missing_ok=True)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    if "github" in args:
        monkeypatch.setenv("GITHUB_ACTIONS", "true")
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(written))
        args = [a for a in args if a != "github"]
    if "--out-file" in args:
        args = [a for a in args if a != "--out-file"] + ["--out-file", str(written)]
    base = (tmp_path / "base").read_text()
    got = run_cli("plan", "vms", "--base", base, *args)
    assert got[0] in (1, 2) and "vms/b.yaml" in got[1], got  # a plan, not a usage error
    return (*got, written.read_bytes() if written.exists() else None)


def _full(run_cli: Run, *args: str) -> tuple[int, str, str]:
    return run_cli("plan", *args, "--no-cache")


def test_an_edited_file_is_planned_again(repo: Repo, pr: str, run_cli: Run,
                                         full_plans: list[str]) -> None:
    before = run_cli("plan", "vms", "--base", pr, "-o", "json")
    repo.write({"vms/c.yaml": vm("c", memory="2Gi")})
    settle(repo.root, age=30)  # settled again, with another mtime
    after = run_cli("plan", "vms", "--base", pr, "-o", "json")
    assert after == _full(run_cli, "vms", "--base", pr, "-o", "json")
    assert after != before and '"name": "c"' in after[1]
    assert full_plans == ["vms", "vms", "vms"]


def test_a_moved_base_ref_is_planned_again(repo: Repo, pr: str, run_cli: Run,
                                           full_plans: list[str]) -> None:
    repo.commit("pull request")
    settle(repo.root)
    assert run_cli("plan", "vms", "--base", "main", "-o", "json")[0] == 1
    repo.git("branch", "-f", "main", "pr")  # merged: main now holds the change
    code, out, err = run_cli("plan", "vms", "--base", "main", "-o", "json")
    assert (code, out, err) == _full(run_cli, "vms", "--base", "main", "-o", "json")
    assert code == 0 and '"changes": 0' in out
    assert run_cli("plan", "vms", "--base", "main", "-o", "json") == (code, out, err)
    assert run_cli("plan", "vms", "--base", "main", "--detailed-exitcode")[0] == 0
    assert run_cli("plan", "vms", "--base", pr, "--detailed-exitcode")[0] == 2
    assert len(full_plans) == 4  # main moved; then the pr base, planned once


def test_a_moved_head_is_planned_again(repo: Repo, pr: str, run_cli: Run,
                                       full_plans: list[str]) -> None:
    repo.commit("pull request")
    settle(repo.root)
    before = run_cli("plan", "vms", "--base", pr, "-o", "json")
    # Same files, same index: only HEAD moves, and the plan's fingerprint names it.
    repo.git("commit", "-q", "--allow-empty", "-m", "empty")
    after = run_cli("plan", "vms", "--base", pr, "-o", "json")
    assert after == _full(run_cli, "vms", "--base", pr, "-o", "json")
    assert after != before and repo.git("rev-parse", "HEAD") in after[1]
    assert len(full_plans) == 3


def test_a_touched_index_is_planned_again(repo: Repo, pr: str, run_cli: Run,
                                          full_plans: list[str]) -> None:
    run_cli("plan", "vms", "--base", pr)
    repo.git("add", "vms/b.yaml")  # git's blob ids for clean files come from the index
    assert run_cli("plan", "vms", "--base", pr) == _full(run_cli, "vms", "--base", pr)
    assert len(full_plans) == 3


def test_another_working_directory_is_planned_again(repo: Repo, pr: str, run_cli: Run,
                                                    full_plans: list[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    folder = str(repo.root / "vms")  # the same argument: display paths follow the cwd
    top = run_cli("plan", folder, "--base", pr, "-o", "json")
    monkeypatch.chdir(folder)
    inside = run_cli("plan", folder, "--base", pr, "-o", "json")
    assert inside == _full(run_cli, folder, "--base", pr, "-o", "json")
    assert '"source": "vms/b.yaml"' in top[1] and '"source": "./b.yaml"' in inside[1]
    assert len(full_plans) == 3


def test_another_target_is_planned_again(repo: Repo, pr: str, run_cli: Run,
                                         full_plans: list[str]) -> None:
    libvirt = run_cli("plan", "vms", "--base", pr, "-o", "json")
    kubevirt = run_cli("plan", "vms", "--base", pr, "-o", "json", "--target", "kubevirt")
    assert kubevirt == _full(run_cli, "vms", "--base", pr, "-o", "json",
                             "--target", "kubevirt")
    assert kubevirt != libvirt
    assert len(full_plans) == 3


def test_files_still_settling_store_nothing(repo: Repo, pr: str, run_cli: Run,
                                            full_plans: list[str]) -> None:
    repo.write({"vms/c.yaml": vm("c", memory="2Gi")})  # just written: may change again
    first = run_cli("plan", "vms", "--base", pr)
    assert run_cli("plan", "vms", "--base", pr) == first
    assert full_plans == ["vms", "vms"]


def test_a_run_that_warned_stores_nothing(repo: Repo, run_cli: Run,
                                          full_plans: list[str]) -> None:
    repo.write({"vms/a.yaml": vm("a"), "vms/b.yaml": "kind: [unclosed\n"})
    base = repo.commit("broken base")
    repo.write({"vms/b.yaml": vm("b")})
    settle(repo.root)
    first = run_cli("plan", "vms", "--base", base)
    assert "virtsync: warning: base revision: vms/b.yaml" in first[2]
    assert run_cli("plan", "vms", "--base", base) == first  # the warning, every time
    assert full_plans == ["vms", "vms"]


def _fresh_package_digest() -> str:
    settledplan.code_digest.cache_clear()  # read the files again
    return settledplan.package_digest()


def test_the_code_digest_covers_every_module(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "reconciler"
    shutil.copytree(Path(settledplan.__file__).parents[1], package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(settledplan, "_PACKAGE", package)
    digest = _fresh_package_digest
    before = digest()
    classify = package / "planning" / "classify.py"
    classify.write_text(classify.read_text() + "\n# changed\n")
    assert digest() != before


def test_the_stored_plan_holds_no_secret(repo: Repo, run_cli: Run, tmp_path: Path) -> None:
    # Safety rule 10: a changed userData is stored as the plan prints it, masked.
    canary = "CANARY-7f3a9c-stored-plan"
    repo.write({"vms/a.yaml": vm("a")})
    base = repo.commit("base")
    repo.write({"vms/a.yaml": vm("a").replace("hostname: a", f"hostname: {canary}")})
    settle(repo.root)
    first = run_cli("plan", "vms", "--base", base, "-o", "json")
    assert first[0] == 1 and "userData" in first[1] and canary not in first[1]
    assert run_cli("plan", "vms", "--base", base, "-o", "json") == first
    stored = tmp_path / "state" / "cache" / settledplan.DB_NAME
    assert stored.is_file()
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path


def test_a_coloured_run_stores_no_rendering(repo: Repo, pr: str, run_cli: Run,
                                            full_plans: list[str]) -> None:
    coloured = run_cli("plan", "vms", "--base", pr, "--color", "always")
    assert "\x1b[" in coloured[1]
    plain = run_cli("plan", "vms", "--base", pr)  # from the stored plan, uncoloured
    assert plain == _full(run_cli, "vms", "--base", pr) and "\x1b[" not in plain[1]
    assert full_plans == ["vms", "vms"]  # the first and the --no-cache run


def test_the_code_digest_covers_every_schema(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(settledplan.SCHEMA_DIR, schemas)
    monkeypatch.setattr(settledplan, "SCHEMA_DIR", schemas)
    digest = _fresh_package_digest
    before = digest()
    vm_schema = schemas / "virtualmachine.schema.json"
    vm_schema.write_text(vm_schema.read_text().replace('"type"', '"type" ', 1))
    assert digest() != before
