"""`virtsync plan PATH --base REV` end to end on a real git repository."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
from plan_helpers import vm
from plan_repo import Repo

from reconciler.planning.plan_codec import load_plan

Run = Callable[..., tuple[int, str, str]]
SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "plan.schema.json").read_text())


@pytest.fixture
def base(repo: Repo) -> str:
    repo.write({"vms/web.yaml": vm("web"), "vms/db.yaml": vm("db"),
                "vms/api.yaml": vm("api", run="Halted"), "README.md": "not yaml\n"})
    return repo.commit("base")


def test_no_changes_exit_zero(base: str, run_cli: Run) -> None:
    code, out, _ = run_cli("plan", "vms", "--base", base)
    assert code == 0
    assert "No changes. 3 objects are up to date." in out
    code, _, _ = run_cli("plan", "vms", "--base", base, "--detailed-exitcode")
    assert code == 0


def test_changes_exit_codes_and_text(repo: Repo, base: str, run_cli: Run) -> None:
    repo.write({"vms/web.yaml": vm("web", cores=8), "vms/api.yaml": None,
                "vms/new.yaml": vm("new")})
    code, out, _ = run_cli("plan", "vms", "--base", base, "--color", "never")
    assert code == 1
    assert "VirtualMachine/prod/web will be restarted" in out
    assert "# forces restart: CPU topology or model" in out
    assert "VirtualMachine/prod/new will be created and started" in out
    assert "VirtualMachine/prod/api will be deleted" in out
    assert out.rstrip().endswith(
        "Plan: 1 to create, 0 to update, 1 to restart, 0 to replace, 1 to delete.")
    assert "\x1b[" not in out
    code, _, _ = run_cli("plan", "vms", "--base", base, "--detailed-exitcode")
    assert code == 2


def test_committed_change_against_main(repo: Repo, base: str, run_cli: Run) -> None:
    repo.git("checkout", "-q", "-b", "feature")
    repo.write({"vms/db.yaml": vm("db", memory="2Gi")})
    head = repo.commit("more memory")
    code, out, _ = run_cli("plan", "vms", "--base", "main", "-o", "json")
    doc = json.loads(out)
    jsonschema.validate(doc, SCHEMA)
    assert code == 1
    assert doc["summary"]["restart"] == 1 and doc["summary"]["unchanged"] == 2
    (change,) = doc["changes"]
    assert change["key"] == "VirtualMachine/prod/db"
    assert change["fields"][0]["path"] == "spec.template.spec.domain.memory.guest"
    assert doc["fingerprints"]["desired"]["commit"] == head
    assert doc["fingerprints"]["live"]["source"] == f"git:main@{base}"


def test_dirty_work_tree_has_no_commit_fingerprint(repo: Repo, base: str,
                                                   run_cli: Run) -> None:
    repo.write({"vms/db.yaml": vm("db", memory="2Gi")})
    _, out, _ = run_cli("plan", "vms", "--base", base, "-o", "json")
    fp = json.loads(out)["fingerprints"]["desired"]
    assert fp["commit"] is None and fp["hash"].startswith("sha256:")


def test_markdown_and_out_file(repo: Repo, base: str, run_cli: Run, tmp_path: Path) -> None:
    repo.write({"vms/web.yaml": vm("web", cores=8)})
    saved = tmp_path / "plan.json"
    code, out, _ = run_cli("plan", "vms", "--base", base, "-o", "markdown",
                           "--out-file", str(saved))
    assert code == 1 and out.startswith("<!-- virtsync-plan -->")
    plan = load_plan(saved)
    assert [str(c.key) for c in plan.changes] == ["VirtualMachine/prod/web"]
    jsonschema.validate(json.loads(saved.read_text()), SCHEMA)


def test_invalid_head_plans_nothing(repo: Repo, base: str, run_cli: Run) -> None:
    repo.write({"vms/web.yaml": vm("web", cores=8),
                "vms/db.yaml": vm("db").replace("cores: 2", "cores: two")})
    code, out, err = run_cli("plan", "vms", "--base", base)
    assert code == 2 and out == ""
    assert "vms/db.yaml:" in err and "nothing planned" in err
    code, out, _ = run_cli("plan", "vms", "--base", base, "--detailed-exitcode")
    assert code == 1 and out == ""


def test_empty_source_plans_nothing(repo: Repo, base: str, run_cli: Run) -> None:
    for name in ("web", "db", "api"):
        repo.write({f"vms/{name}.yaml": None})
    code, out, err = run_cli("plan", "vms", "--base", base)
    assert code == 2 and out == "" and "no objects found" in err


def test_unknown_revision_is_an_error(base: str, run_cli: Run) -> None:
    code, out, err = run_cli("plan", "vms", "--base", "no-such-branch")
    assert code == 2 and out == ""
    assert "unknown git revision 'no-such-branch'" in err


def test_base_without_the_folder_creates_everything(repo: Repo, run_cli: Run) -> None:
    repo.write({"README.md": "x\n"})
    first = repo.commit("empty")
    repo.write({"vms/web.yaml": vm("web")})
    code, out, _ = run_cli("plan", "vms", "--base", first, "-o", "json")
    assert code == 1 and json.loads(out)["summary"]["create"] == 1


def test_moved_file_is_not_a_change(repo: Repo, base: str, run_cli: Run) -> None:
    repo.git("mv", "vms/web.yaml", "vms/frontend-web.yaml")
    code, out, _ = run_cli("plan", "vms", "--base", base)
    assert code == 0, out


def test_no_base_plans_against_the_host_and_an_unreachable_one_is_an_error(
        base: str, run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without --base the live side is the default node; one that cannot be observed is
    # an error (safety rule 2), never "nothing exists, create everything".
    monkeypatch.setenv("VIRTSYNC_LIBVIRT_URI", "qemu+tcp://127.0.0.1:1/system")
    code, out, err = run_cli("plan", "vms")
    assert code == 2 and "127.0.0.1:1" in err and out == ""


def test_color_always_and_no_color(repo: Repo, base: str, run_cli: Run,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    repo.write({"vms/web.yaml": vm("web", cores=8)})
    _, out, _ = run_cli("plan", "vms", "--base", base, "--color", "always")
    assert "\x1b[" in out
    monkeypatch.setenv("NO_COLOR", "1")
    _, out, _ = run_cli("plan", "vms", "--base", base, "--color", "auto")
    assert "\x1b[" not in out


def test_github_step_summary(repo: Repo, base: str, run_cli: Run, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    repo.write({"vms/web.yaml": vm("web", cores=8)})
    run_cli("plan", "vms", "--base", base, "-o", "json")
    assert "<!-- virtsync-plan -->" in summary.read_text()


def test_instancetype_change_lists_the_vms_using_it(repo: Repo, run_cli: Run) -> None:
    def sized(name: str) -> str:
        text = vm(name).replace("spec:\n", "spec:\n  instancetype:\n    name: small\n", 1)
        return text.replace("        cpu:\n          cores: 2\n        memory:\n"
                            "          guest: 1Gi\n", "")

    def small(cpus: int) -> str:
        return ("apiVersion: instancetype.kubevirt.io/v1beta1\n"
                "kind: VirtualMachineClusterInstancetype\n"
                f"metadata:\n  name: small\nspec:\n  cpu:\n    guest: {cpus}\n"
                "  memory:\n    guest: 1Gi\n")

    repo.write({"vms/small.yaml": small(1), "vms/a.yaml": sized("a"),
                "vms/b.yaml": vm("b")})
    base = repo.commit("base")
    repo.write({"vms/small.yaml": small(2)})
    code, out, err = run_cli("plan", "vms", "--base", base, "-o", "json")
    assert code == 1, err
    changes = {c["name"]: c for c in json.loads(out)["changes"]}
    assert set(changes) == {"small", "a"}  # b does not use it
    assert changes["a"]["disruption"] == "restart"
    assert [f["path"] for f in changes["a"]["fields"]] == ["spec.instancetype.revisionName"]
    # KubeVirt keeps a running VM on its instancetype revision until it restarts.
    code, out, _ = run_cli("plan", "vms", "--base", base, "-o", "json", "--backend", "kubevirt")
    assert {c["name"] for c in json.loads(out)["changes"]} == {"small"}
