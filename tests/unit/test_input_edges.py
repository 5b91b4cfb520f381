"""Issue 8, input edges: `virtsync validate` names every problem of a tree in one run,
never a traceback (paths, names, labels, alias budgets), through the CLI."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.check.metanames import MAX_CLAIM_NAME
from reconciler.cli import main
from reconciler.tree.yamlsafe import MAX_ALIAS_NODES_PER_RUN

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import aliasgen


def vm(name: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": "edge"},
        "spec": {"runStrategy": "Halted", "template": {"spec": {
            "domain": {"cpu": {"cores": 1}, "memory": {"guest": "64Mi"},
                       "devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}],
                                   "interfaces": [{"name": "default", "masquerade": {}}]}},
            "networks": [{"name": "default", "pod": {}}],
            "volumes": [{"name": "root", "dataVolume": {"name": f"{name}-root"}}],
        }}},
    }
    for dotted, value in extra.items():
        *parents, last = dotted.split("__")
        node = body
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        node[last] = value
    return body


def put(path: Path, *docs: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)


def validate(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, set[tuple[str, str, str]]]:
    """(exit code, {(file name, JSON path, rule)}) of `virtsync validate --format json`."""
    code = main(["validate", "--format", "json", "--no-cache", *map(str, paths)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err, err
    doc = json.loads(out)
    return code, {(os.path.basename(e["file"]), e["path"], e["rule"]) for e in doc["errors"]}


def lines(capsys: pytest.CaptureFixture[str], *paths: Path) -> dict[str, int]:
    """JSON path → line of `virtsync validate --format json` (for located errors)."""
    main(["validate", "--format", "json", "--no-cache", *map(str, paths)])
    return {e["path"]: e["line"] for e in json.loads(capsys.readouterr().out)["errors"]}


# ------------------------------------------------------------------ one run, every problem


def test_schema_error_hides_neither_semantic_nor_cross_file_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mac = "52:54:00:00:00:01"
    broken = vm("a", spec__template__spec__domain__cpu__cores="two")  # schema
    broken["spec"]["template"]["spec"]["domain"]["devices"]["disks"][0]["name"] = "rot"  # semantic
    broken["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"] = mac
    other = vm("b")
    other["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"] = mac
    put(tmp_path / "t" / "a.yaml", broken)
    put(tmp_path / "t" / "b.yaml", other)
    code, errors = validate(capsys, tmp_path / "t")
    assert code == 1
    assert errors == {
        ("a.yaml", "spec.template.spec.domain.cpu.cores", "schema.type"),
        ("a.yaml", "spec.template.spec.domain.devices.disks[0].name",
         "semantic.disk-volume-missing"),
        ("b.yaml", "spec.template.spec.domain.devices.interfaces[0].macAddress",
         "semantic.duplicate-mac"),
    }


def test_semantic_checks_survive_any_wrong_shape(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Shapes the semantic checks used to take for granted: each is the schema's error,
    the other documents' problems are still reported, and nothing crashes."""
    shapes = [
        vm("s1", spec__template__spec__domain__devices=["not", "a", "mapping"]),
        vm("s2", spec__template__spec__volumes="nope", spec__template__spec__networks=7),
        vm("s3", spec__template__spec__domain__devices__disks__0__bootOrder="1"),
        vm("s4", spec__template="x", spec__instancetype={"name": "u1"}),
        vm("s5", spec__template__spec__domain__firmware=[1], spec__template__spec__domain__cpu=3,
           spec__instancetype={"name": "u1"}),
        vm("s6", spec__dataVolumeTemplates="x", metadata__labels=["x"]),
    ]
    put(tmp_path / "t" / "shapes.yaml", *shapes)
    put(tmp_path / "t" / "dup.yaml", vm("s1"), vm("ok", metadata__labels={"-bad": "v"}))
    code, errors = validate(capsys, tmp_path / "t")
    assert code == 1
    rules = {(f, r) for f, _, r in errors}
    assert ("shapes.yaml", "schema.type") in rules
    # cross-file, although the later document (the one reported) fails its schema
    assert ("shapes.yaml", "semantic.duplicate-object") in rules
    assert ("dup.yaml", "semantic.label-key") in rules
    assert ("shapes.yaml", "semantic.boot-order-invalid") not in rules


# ------------------------------------------------------------------ names and their limits


def test_vm_name_too_long_for_the_node_is_refused_at_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    long_name = "v" * 253  # a valid DNS-1123 subdomain: passed validate, crashed apply
    put(tmp_path / "t" / "a.yaml", vm(long_name))
    code, errors = validate(capsys, tmp_path / "t")
    assert code == 1
    assert ("a.yaml", "metadata.name", "semantic.name-too-long") in errors
    assert lines(capsys, tmp_path / "t")["metadata.name"] == 4


def test_long_name_in_a_long_namespace_and_long_claim_names_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = vm("w" * 200, metadata__namespace="n" * 63)
    body["spec"]["template"]["spec"]["volumes"] = [
        {"name": "root", "dataVolume": {"name": "c" * (MAX_CLAIM_NAME + 1)}},
        {"name": "x" * 64, "persistentVolumeClaim": {"claimName": "p" * 250}}]
    body["spec"]["dataVolumeTemplates"] = [{"metadata": {"name": "d" * 253}, "spec": {
        "storage": {"resources": {"requests": {"storage": "1Mi"}}}, "source": {"blank": {}}}}]
    put(tmp_path / "t" / "a.yaml", body)
    put(tmp_path / "t" / "dv.yaml", {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
                                     "metadata": {"name": "e" * 250, "namespace": "edge"},
                                     "spec": {"storage": {"resources": {"requests": {
                                         "storage": "1Mi"}}}, "source": {"blank": {}}}})
    code, errors = validate(capsys, tmp_path / "t")
    assert code == 1
    too_long = {(f, p) for f, p, r in errors if r == "semantic.name-too-long"}
    assert too_long == {
        ("a.yaml", "metadata.name"),
        ("a.yaml", "spec.dataVolumeTemplates[0].metadata.name"),
        ("a.yaml", "spec.template.spec.volumes[0].dataVolume.name"),
        ("a.yaml", "spec.template.spec.volumes[1].name"),
        ("a.yaml", "spec.template.spec.volumes[1].persistentVolumeClaim.claimName"),
        ("dv.yaml", "metadata.name"),
    }


def test_names_at_the_limits_are_valid(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    body = vm("w" * 63, metadata__namespace="n" * 63)
    body["spec"]["template"]["spec"]["volumes"][0]["dataVolume"]["name"] = "c" * MAX_CLAIM_NAME
    put(tmp_path / "t" / "a.yaml", body)
    assert validate(capsys, tmp_path / "t") == (0, set())


# ------------------------------------------------------------------ paths


def test_symlink_loops_are_refused_and_named(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "t"
    put(root / "ok.yaml", vm("ok"))
    os.symlink("self.yaml", root / "self.yaml")                   # a link to itself
    os.symlink("ping.yaml", root / "pong.yaml")                   # a loop through two links
    os.symlink("pong.yaml", root / "ping.yaml")
    os.symlink("dir-b", root / "dir-a")                           # a loop without .yaml
    os.symlink("dir-a", root / "dir-b")
    code, errors = validate(capsys, root)
    assert code == 1
    assert {(f, r) for f, _, r in errors} == {
        (n, "path.symlink-loop") for n in ("self.yaml", "ping.yaml", "pong.yaml",
                                           "dir-a", "dir-b")}


def test_non_utf8_file_and_folder_names_are_refused_and_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "t"
    put(root / "ok.yaml", vm("ok"))
    put(Path(os.fsdecode(bytes(root) + b"/bad\xff.yaml")), vm("bad"))
    put(Path(os.fsdecode(bytes(root) + b"/d\xfe/in.yaml")), vm("in"))
    code, errors = validate(capsys, root)
    assert code == 1
    assert errors == {("bad\\xff.yaml", ".", "path.not-utf8"), ("d\\xfe", ".", "path.not-utf8")}
    # the cache path too (it hashes every file name)
    assert main(["validate", str(root)]) == 1
    assert "internal error" not in capsys.readouterr().err


def test_non_ascii_utf8_names_are_specs_like_any_other(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The walk asks only a non-ASCII name whether it is UTF-8 (issue 13): such a name that
    # is valid UTF-8 is a spec like any other, in the full, the cached and the plain walk.
    root = tmp_path / "t"
    put(root / "vm-é.yaml", vm("e"))
    put(root / "dossier-ü" / "虚拟机.yaml", vm("u"))
    assert validate(capsys, root) == (0, set())
    for _ in range(2):  # cold cache, then the plain walk's warm path
        assert main(["validate", str(root)]) == 0
        assert "2 objects in 2 files: valid" in capsys.readouterr().err


def test_folder_link_leaving_the_root_is_refused_and_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "outside"
    put(outside / "evil.yaml", vm("evil"))
    root = tmp_path / "t"
    put(root / "ok.yaml", vm("ok"))
    put(root / "sub" / "in.yaml", vm("in"))
    os.symlink(outside, root / "elsewhere")
    os.symlink(root / "sub", root / "inside")  # inside the root: its files are read once
    code, errors = validate(capsys, root)
    assert (code, errors) == (1, {("elsewhere", ".", "path.symlink-escape")})


# ------------------------------------------------------------------ labels and annotations


def test_label_keys_and_values_follow_kubernetes(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    body = vm("a", metadata__labels={
        "app": "web", "example.com/tier": "", "-bad": "x", "Bad_Prefix/x": "y",
        "ok": "v" * 64, "k" * 64: "z", "a/b/c": "w", "fine.io/name_2.x-y": "A.b_c-9"},
        metadata__annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}",
                               "bad key": "any value is fine"})
    body["spec"]["template"]["metadata"] = {"labels": {"kubevirt.io/domain": "a",
                                                       "app": "has space"},
                                            "annotations": {"/x": "y"}}
    put(tmp_path / "t" / "a.yaml", body)
    code, errors = validate(capsys, tmp_path / "t")
    assert code == 1
    assert errors == {
        ("a.yaml", "metadata.labels.-bad", "semantic.label-key"),
        ("a.yaml", 'metadata.labels["Bad_Prefix/x"]', "semantic.label-key"),
        ("a.yaml", "metadata.labels.ok", "semantic.label-value"),
        ("a.yaml", f"metadata.labels.{'k' * 64}", "semantic.label-key"),
        ("a.yaml", 'metadata.labels["a/b/c"]', "semantic.label-key"),
        ("a.yaml", 'metadata.annotations["bad key"]', "semantic.annotation-key"),
        ("a.yaml", "spec.template.metadata.labels.app", "semantic.label-value"),
        ("a.yaml", 'spec.template.metadata.annotations["/x"]', "semantic.annotation-key"),
    }


# ------------------------------------------------------------------ alias budgets


def test_file_of_many_small_alias_bombs_is_refused(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Each document stays under the per-document limit; the file does not."""
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "bombs.yaml").write_bytes(aliasgen.bomb_file(4200))
    put(tmp_path / "t" / "ok.yaml", vm("ok"))
    code, errors = validate(capsys, tmp_path / "t")
    assert (code, errors) == (1, {("bombs.yaml", ".", "yaml.alias-bomb")})


def test_tree_of_alias_bombs_is_refused_by_the_run_budget(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each file stays under the per-file budget; the run does not."""
    per_file = 190_000
    n = MAX_ALIAS_NODES_PER_RUN // per_file + 2
    for i in range(n):
        (tmp_path / "t").mkdir(exist_ok=True)
        (tmp_path / "t" / f"b{i:02}.yaml").write_bytes(aliasgen.bomb_file(1))
    code, errors = validate(capsys, tmp_path / "t")
    assert code == 1
    refused = {f for f, _, r in errors if r == "yaml.alias-budget"}
    assert refused and len(refused) < n  # the first files fit; the later ones are refused
    # the files that fit hold no object (that is all the rest says)
    assert {r for _, _, r in errors} == {"yaml.alias-budget", "object.missing-field"}


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_host_mode_keeps_the_run_alias_budget(command: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Host mode reads the tree through the desired-state library, under the same run
    budget as `validate`: the tree is refused before any backend is opened."""
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    for i in range(MAX_ALIAS_NODES_PER_RUN // 190_000 + 2):
        (tmp_path / "t").mkdir(exist_ok=True)
        (tmp_path / "t" / f"b{i:02}.yaml").write_bytes(aliasgen.bomb_file(1))
    assert main([command, str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "alias expansion over the files read in this run exceeds" in err, err
