"""Issue 8: names that pass `validate` must not crash `apply` (ENAMETOOLONG) or fail in
libvirt. Names at virtsync's limits apply; longer ones are refused before any change,
located in the file."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from reconciler.check.metanames import MAX_CLAIM_NAME
from reconciler.cli import main

from .test_apply_testdriver import Tree, conn, domains, tree, vm

__all__ = ["conn", "tree"]  # fixtures used by name


def named(name: str, namespace: str = "e2e") -> dict[str, Any]:
    body = vm(name, run="Halted")
    body["metadata"]["namespace"] = namespace
    return body


def put(tree: Tree, file: str, body: dict[str, Any]) -> None:
    (tree.root / "vms" / file).write_text(yaml.safe_dump(body))


def test_names_at_the_limit_apply_and_longer_ones_are_refused_located(
        conn: Any, tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    namespace = "e2e-" + "x" * 59  # 63 characters
    longest = named("n" * 63, namespace)  # 63 too
    claim = "c" * MAX_CLAIM_NAME  # its file and the temporary name it is made under fit
    longest["spec"]["dataVolumeTemplates"][0]["metadata"]["name"] = claim
    longest["spec"]["template"]["spec"]["volumes"][1]["dataVolume"]["name"] = claim
    put(tree, "longest.yaml", longest)
    try:
        apply_at_the_limits_then_refuse_longer(conn, tree, capsys, claim, f"{namespace}_{'n' * 63}")
    finally:
        for dom in conn.listAllDomains():
            if dom.name().startswith(namespace):
                dom.undefine()


def apply_at_the_limits_then_refuse_longer(conn: Any, tree: Tree, capsys: pytest.CaptureFixture[str], claim: str,
                 domain: str) -> None:
    assert main(["apply", str(tree.root)]) == 0
    assert list(tree.storage.rglob(f"{claim}.qcow2"))
    assert conn.lookupByName(domain)
    capsys.readouterr()

    put(tree, "long.yaml", named("v" * 253))  # valid in Kubernetes; crashed with ENAMETOOLONG
    before = sorted(p for p in tree.storage.rglob("*"))
    assert main(["apply", str(tree.root)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    assert "long.yaml:4:3: error: metadata.name" in err and "at most 63" in err
    assert sorted(p for p in tree.storage.rglob("*")) == before  # refused before any change
    assert not domains(conn)


def test_long_name_in_a_long_namespace_is_refused_before_libvirt(
        conn: Any, tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    namespace = "e2e-" + "s" * 59  # 63 characters, the longest namespace
    put(tree, "long.yaml", named("w" * 200, namespace))  # failed in libvirt (console log)
    assert main(["apply", str(tree.root)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    assert "long.yaml:4:3: error: metadata.name: a VirtualMachine name is 200 characters" in err
    assert not [d for d in conn.listAllDomains() if d.name().startswith(namespace)]
