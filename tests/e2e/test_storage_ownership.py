"""Storage ownership through the CLI on libvirt's test driver (fast lane), issue 8:
a DataVolume has one owner per namespace (validate refuses a second one, naming both
places); prune deletes only files the pruned VM owns and nothing else references
(safety rule 13), and the plan lists them; a missing disk file is reported, never
"up to date"; refusals exit 1; --max-prune 0 means none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.test_apply_testdriver import Tree, conn, domains, run, tree, vm

__all__ = ["conn", "tree"]  # fixtures used below


def _write(folder: Path, name: str, docs: list[dict[str, Any]]) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def _line_of(path: Path, needle: str, nth: int = 1) -> int:
    hits = [i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    return hits[nth - 1]


def _validate_json(folder: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    code = run("validate", "--format", "json", "--no-cache", str(folder))
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["valid"] is False, report
    return list(report["errors"])


# ------------------------------------------------------------------ one owner per DataVolume


def test_two_vms_owning_one_datavolume_are_refused_naming_both_places(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    first = vm("alpha")
    second = vm("beta")
    second["spec"]["dataVolumeTemplates"][0]["metadata"]["name"] = "alpha-data"
    a = _write(tmp_path, "a.yaml", [first])
    b = _write(tmp_path, "b.yaml", [second])
    errors = _validate_json(tmp_path, capsys)
    assert [e["rule"] for e in errors] == ["semantic.duplicate-datavolume"]
    err = errors[0]
    # The second claim is the error; its message names the first file and line.
    assert err["file"].endswith("b.yaml")
    assert err["line"] == _line_of(b, "name: alpha-data")
    assert err["path"] == "spec.dataVolumeTemplates[0].metadata.name"
    assert f"a.yaml:{_line_of(a, 'name: alpha-data')}" in err["message"]
    assert "VirtualMachine/e2e/alpha" in err["message"]


def test_vm_template_named_like_a_datavolume_document_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Second case: the other owner is a DataVolume document, in the same file, and the
    template comes second in document order."""
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    dv = {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
          "metadata": {"name": "shared", "namespace": "e2e"},
          "spec": {"source": {"blank": {}},
                   "storage": {"resources": {"requests": {"storage": "16Mi"}}}}}
    owner = vm("gamma")
    owner["spec"]["dataVolumeTemplates"][0]["metadata"]["name"] = "shared"
    path = _write(tmp_path, "both.yaml", [dv, owner])
    errors = _validate_json(tmp_path, capsys)
    assert [e["rule"] for e in errors] == ["semantic.duplicate-datavolume"]
    assert errors[0]["line"] == _line_of(path, "name: shared", 2)
    assert f"line {_line_of(path, 'name: shared', 1)}" in errors[0]["message"]
    assert "DataVolume/e2e/shared" in errors[0]["message"]


def test_same_template_name_in_other_namespaces_and_shared_mounts_are_valid(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Uniqueness is per namespace, and mounting another VM's claim is legal (it is the
    owner that must be unique)."""
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    other = vm("alpha")
    other["metadata"]["namespace"] = "elsewhere"
    reader = vm("reader")
    reader["spec"]["template"]["spec"]["volumes"].append(
        {"name": "peer", "persistentVolumeClaim": {"claimName": "alpha-data"}})
    reader["spec"]["template"]["spec"]["domain"]["devices"]["disks"].append(
        {"name": "peer", "disk": {"bus": "virtio"}})
    _write(tmp_path, "a.yaml", [vm("alpha")])
    _write(tmp_path, "b.yaml", [other, reader])
    assert run("validate", str(tmp_path), "--no-cache") == 0, capsys.readouterr()


# ------------------------------------------------------------------ the prune cap


@pytest.mark.parametrize("removed", [1, 2])
def test_max_prune_zero_means_none_and_a_capped_prune_exits_1(
        conn: Any, tree: Tree, removed: int, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 14: `--max-prune 0` must not fall back to the default cap (which would allow
    one of 10 here). Issue 8: a refused prune is a refusal (exit 1), not an error (2)."""
    for i in range(10):
        tree.put(vm(f"cap{i}", run="Halted"))
    assert run("apply", str(tree.root)) == 0
    for i in range(removed):
        tree.remove(f"cap{i}")
    before = set(domains(conn))
    capsys.readouterr()
    assert run("apply", str(tree.root), "--prune", "--max-prune", "0") == 1
    err = capsys.readouterr().err
    assert f"pruning {removed} objects is over the cap (0)" in err
    assert "nothing was changed" in err
    assert set(domains(conn)) == before
    assert run("apply", str(tree.root), "--prune", "--max-prune", "-1") == 2  # usage error
    assert set(domains(conn)) == before
    assert run("apply", str(tree.root), "--prune", "--max-prune", str(removed)) == 0
    assert len(domains(conn)) == 10 - removed
