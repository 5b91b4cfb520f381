"""The loader refuses hostile or sloppy YAML with a located error, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.core.model import VirtsyncError
from reconciler.tree.loader import MAX_FILE_BYTES, find_yaml_files, load_bytes

VM = b"""apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: a
spec:
  runStrategy: Halted
"""


def rules(content: bytes) -> list[tuple[int, int, str]]:
    return [(f.line, f.column, f.rule) for f in load_bytes(content, "f.yaml").findings]


def test_plain_vm_loads_with_default_namespace() -> None:
    loaded = load_bytes(VM, "f.yaml")
    assert loaded.findings == ()
    (m,) = loaded.manifests
    assert (m.kind, m.namespace, m.name, m.source.doc) == ("VirtualMachine", "default", "a", 0)


def test_cluster_scoped_kind_has_no_namespace() -> None:
    doc = (b"apiVersion: instancetype.kubevirt.io/v1beta1\n"
           b"kind: VirtualMachineClusterInstancetype\nmetadata: {name: u1, namespace: x}\n")
    (m,) = load_bytes(doc, "f.yaml").manifests
    assert m.namespace == ""


def test_duplicate_key_is_located_at_the_second_key() -> None:
    assert rules(VM + b"  runStrategy: Always\n") == [(7, 3, "yaml.duplicate-key")]


def test_yaml11_boolean_key_is_refused() -> None:
    assert rules(VM.replace(b"  name: a\n", b"  name: a\n  labels:\n    no: x\n")) == [
        (6, 5, "yaml.non-string-key")]


def test_yaml11_scalars_follow_kubectl() -> None:
    doc = VM + b"  mac: 52:54:00:12:34:56\n  flag: no\n  when: 2024-01-01\n"
    (m,) = load_bytes(doc, "f.yaml").manifests
    spec = m.body["spec"]
    assert spec["mac"] == 52 * 60**5 + 54 * 60**4 + 0 + 12 * 60**2 + 34 * 60 + 56
    assert spec["flag"] is False
    assert spec["when"] == "2024-01-01"  # timestamps stay strings, as in Kubernetes


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
        prev = name
    assert rules("\n".join(lines).encode()) == [(1, 1, "yaml.alias-bomb")]


def test_self_referencing_alias_is_refused() -> None:
    assert [r for _, _, r in rules(b"a: &a [*a]\n")] == ["yaml.too-deep"]


@pytest.mark.parametrize("depth", [70, 5000])
def test_deep_nesting_is_refused(depth: int) -> None:
    doc = b"a: " + b"[" * depth + b"]" * depth + b"\n"
    (finding,) = load_bytes(doc, "f.yaml").findings
    assert finding.rule in ("yaml.too-deep", "yaml.syntax")
    assert "nesting" in finding.message or "depth" in finding.message


def test_oversized_file_is_refused_without_parsing() -> None:
    assert rules(b"#" * (MAX_FILE_BYTES + 1)) == [(1, 1, "yaml.too-large")]


def test_non_utf8_points_at_the_bad_byte() -> None:
    assert rules(b"a: b\nc: caf\xe9\n") == [(2, 7, "yaml.encoding")]


def test_tab_indentation_message() -> None:
    (f,) = load_bytes(b"a:\n\tb: c\n", "f.yaml").findings
    assert (f.line, f.rule) == (2, "yaml.syntax") and "tab" in f.message


@pytest.mark.parametrize("content", [b"", b"# only a comment\n", b"---\n---\n"])
def test_empty_file_is_reported_as_warning(content: bytes) -> None:
    (f,) = load_bytes(content, "f.yaml").findings
    assert (f.rule, f.severity) == ("yaml.empty", "warning")


def test_multi_document_indexes_and_positions() -> None:
    doc = VM + b"---\n" + VM.replace(b"name: a", b"name: b") + b"---\n" + b"kind: X\n"
    loaded = load_bytes(doc, "f.yaml")
    assert [(m.name, m.source.doc) for m in loaded.manifests] == [("a", 0), ("b", 1)]
    (f,) = loaded.findings
    assert (f.line, f.rule) == (15, "object.missing-field")


def test_missing_path_is_an_error_not_an_empty_tree(tmp_path: Path) -> None:
    with pytest.raises(VirtsyncError, match="no such file"):
        find_yaml_files([str(tmp_path / "absent")])


def test_symlink_leaving_the_root_is_refused_and_named(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_bytes(VM)
    root = tmp_path / "repo"
    (root / "vms").mkdir(parents=True)
    (root / "vms" / "ok.yaml").write_bytes(VM)
    os.symlink(outside, root / "vms" / "evil.yaml")
    os.symlink(root / "vms" / "ok.yaml", root / "inside-link.yaml")
    sources, findings = find_yaml_files([str(root)])
    # The in-root link and its target are one file, read once under its own name.
    assert [Path(s.display).name for s in sources] == ["ok.yaml"]
    (f,) = findings
    assert f.rule == "path.symlink-escape" and f.file.endswith("evil.yaml")


def test_only_yaml_files_and_no_vcs_dirs(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yaml").write_bytes(VM)
    (tmp_path / "README.md").write_text("hi")
    (tmp_path / "a.yml").write_bytes(VM)
    sources, _ = find_yaml_files([str(tmp_path)])
    assert [Path(s.display).name for s in sources] == ["a.yml"]


def test_virtsyncignore_leaves_out_listed_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "workflow.yaml").write_text("on: push\n")
    (tmp_path / "vms").mkdir()
    (tmp_path / "vms" / "a.yaml").write_bytes(VM)
    (tmp_path / "vms" / "kustomization.yaml").write_text("resources: []\n")
    (tmp_path / ".virtsyncignore").write_text("# not specs\nci/\nkustomization.yaml\n")
    sources, _ = find_yaml_files([str(tmp_path)])
    assert [Path(s.display).name for s in sources] == ["a.yaml"]
