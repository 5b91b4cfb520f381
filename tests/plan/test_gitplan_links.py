"""`plan --base` names each work-tree file by its git blob id, from git's index when git
sees the file unmodified. The index holds a symbolic link's own blob (its target's
name), not the content virtsync reads through it: a file reached through a link is
hashed as its content, however the walk met it (issue 13 skips the file-system check
only for files the walk saw as regular files)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest
from plan_helpers import vm
from plan_repo import Repo

Run = Callable[..., tuple[int, str, str]]


@pytest.mark.parametrize("named", ["folder", "file"])
def test_a_linked_file_whose_target_changed_is_planned(repo: Repo, run_cli: Run,
                                                       named: str) -> None:
    # The link's target sits in an ignored folder, so the link is the file's only name.
    repo.write({"vms/web.yaml": vm("web"), "vms/.virtsyncignore": "hidden/\n",
                "vms/hidden/db.yaml": vm("db")})
    os.symlink("hidden/db.yaml", repo.root / "vms" / "db.yaml")
    base = repo.commit("base")
    repo.write({"vms/hidden/db.yaml": vm("db", memory="2Gi")})
    repo.commit("db's memory, through its link")  # git's index: the link's blob is clean
    path = "vms" if named == "folder" else "vms/db.yaml"
    for _ in range(2):  # cold, then warm (the validation cache's answers)
        code, out, _ = run_cli("plan", path, "--base", base, "-o", "json")
        doc = json.loads(out)
        assert code == 1, out
        assert [c["key"] for c in doc["changes"]] == ["VirtualMachine/prod/db"]
