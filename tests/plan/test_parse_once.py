"""Each YAML file (each version of it: the work tree's, the base revision's) is parsed once
per `plan` run, in git mode and in host mode (issue 9, item 4: one desired-state library)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e.test_apply_testdriver import Tree, conn  # noqa: F401 (a fixture)
from e2e.test_apply_testdriver import vm as live_vm
from parse_count import Parses, count_parses, parsed_more_than_once
from plan_helpers import vm
from plan_repo import Repo

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Parses:
    return count_parses(monkeypatch)


def instancetype(cpus: int) -> str:
    return ("apiVersion: instancetype.kubevirt.io/v1beta1\n"
            "kind: VirtualMachineClusterInstancetype\n"
            f"metadata:\n  name: small\nspec:\n  cpu:\n    guest: {cpus}\n"
            "  memory:\n    guest: 1Gi\n")


def sized(name: str) -> str:
    text = vm(name).replace("spec:\n", "spec:\n  instancetype:\n    name: small\n", 1)
    return text.replace("        cpu:\n          cores: 2\n        memory:\n"
                        "          guest: 1Gi\n", "")


@pytest.mark.parametrize("cache", ["cold", "warm", "off"])
def test_git_mode_parses_each_file_once(repo: Repo, run_cli: Run, parses: Parses,
                                        cache: str) -> None:
    # An instancetype change makes git mode read the whole tree on both sides (its VMs
    # change too): the widest read there is.
    repo.write({"vms/small.yaml": instancetype(1), "vms/a.yaml": sized("a"),
                "vms/b.yaml": vm("b"), "vms/c.yaml": vm("c")})
    base = repo.commit("base")
    repo.write({"vms/small.yaml": instancetype(2), "vms/c.yaml": vm("c", cores=4)})
    flags = ["--no-cache"] if cache == "off" else []
    if cache == "warm":
        assert run_cli("validate", "vms")[0] == 0
        parses.clear()
    code, out, err = run_cli("plan", "vms", "--base", base, "-o", "json", *flags)
    assert code == 1, err
    assert '"name": "a"' in out and '"name": "c"' in out
    assert parses, "the counter saw no parse: the wrapped function is no longer the loader's"
    assert parsed_more_than_once(parses) == {}
    # head: 4 files; base: the 2 that differ (the 2 equal blobs are the same bytes)
    assert len(parses) == 6 if cache != "warm" else len(parses) <= 6


def test_git_mode_without_dependents_parses_only_what_it_needs(
        repo: Repo, run_cli: Run, parses: Parses) -> None:
    repo.write({"vms/a.yaml": vm("a"), "vms/b.yaml": vm("b")})
    base = repo.commit("base")
    repo.write({"vms/b.yaml": vm("b", memory="2Gi")})
    assert run_cli("validate", "vms")[0] == 0
    parses.clear()
    code, _, err = run_cli("plan", "vms", "--base", base)
    assert code == 1, err
    # warm cache: validation parses nothing; the diff parses b on both sides, once each
    assert sorted(d for d, _ in parses.elements()) == ["vms/b.yaml", "vms/b.yaml"]


def test_host_mode_parses_each_file_once(conn: Any, tmp_path: Path,  # noqa: F811
                                         monkeypatch: pytest.MonkeyPatch,
                                         run_cli: Run, parses: Parses) -> None:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    tree = Tree(tmp_path / "repo", tmp_path / "storage")
    tree.put(live_vm("web"))
    tree.put(live_vm("db", cores=2))
    code, _, err = run_cli("plan", str(tree.root))
    assert code == 1, err
    assert len(parses) == 3  # cluster.yaml and two VMs
    assert parsed_more_than_once(parses) == {}


def test_apply_parses_each_file_once(conn: Any, tmp_path: Path,  # noqa: F811
                                     monkeypatch: pytest.MonkeyPatch,
                                     run_cli: Run, parses: Parses) -> None:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    tree = Tree(tmp_path / "repo", tmp_path / "storage")
    tree.put(live_vm("web"))
    tree.put(live_vm("db", cores=2))
    tree.put(live_vm("cache", cores=4))
    code, _, err = run_cli("apply", str(tree.root), "--auto-approve")
    assert code == 0, err
    assert len(parses) == 4  # cluster.yaml and three VMs
    assert parsed_more_than_once(parses) == {}
