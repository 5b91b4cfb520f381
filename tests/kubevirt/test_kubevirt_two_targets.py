"""One git tree, one Cluster object per target: the same commit planned for libvirt
(test:///default) and for KubeVirt (the API model), each classified by its backend's
rules; and an apply conflict on the cluster reported with the other field manager."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import libvirt
import pytest
import yaml
from kube.apimodel import KubeModel
from kube_tree import KUBE_CLUSTER, vm, write

Run = Callable[..., tuple[int, str, str]]
KV = "kubevirt.io/v1"


def _libvirt_cluster(storage: Path) -> str:
    nodes = [{"name": "n1", "uri": "test:///default", "storageDir": str(storage),
              "imageDir": str(storage.parent / "images"), "memoryMiB": 16384}]
    return yaml.safe_dump({"apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster",
                           "metadata": {"name": "lab"},
                           "spec": {"backend": "libvirt", "nodes": nodes}})


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def _classes(out: str) -> dict[str, str]:
    return {c["name"]: c["disruption"] for c in json.loads(out)["changes"]
            if c["kind"] == "VirtualMachine"}


def test_one_tree_two_targets_each_by_its_rules(kube_env: Path, kube_model: KubeModel,
                                                 run_cli: Run) -> None:
    tree = kube_env
    write(tree, {"clusters/lab.yaml": _libvirt_cluster(tree.parent / "storage"),
                 "clusters/kube.yaml": KUBE_CLUSTER,
                 "vms/web.yaml": vm("web", memory="64Mi")})
    _git(tree, "init", "-q")
    _git(tree, "add", "-A")
    _git(tree, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    conn = libvirt.open("test:///default")  # the test driver's state lives while open
    try:
        # without --target two Cluster objects are ambiguous: refused, naming both
        code, _, err = run_cli("apply", str(tree), "--auto-approve")
        assert code == 2 and "choose one with --target" in err
        assert "libvirt (" in err and "kubevirt (" in err
        for target in ("libvirt", "kubevirt"):
            code, _, err = run_cli("apply", str(tree), "--auto-approve", "--target", target)
            assert code == 0, err
        assert conn.lookupByName("default_web").isActive()
        assert kube_model.get(KV, "VirtualMachine", "default", "web") is not None
        # the same change from the same commit: more guest memory
        write(tree, {"vms/web.yaml": vm("web", memory="128Mi")})
        base = _git(tree, "rev-parse", "HEAD")
        by_target = {}
        for target in ("libvirt", "kubevirt"):
            code, out, err = run_cli("plan", str(tree), "--base", base, "--target", target,
                                     "-o", "json")
            assert code == 1, err
            by_target[target] = _classes(out)["web"]
            code, out, err = run_cli("plan", str(tree), "--target", target, "-o", "json")
            assert code == 1, err
            assert _classes(out)["web"] == by_target[target], target  # host mode agrees
        # libvirt redefines the domain (restart); KubeVirt's LiveUpdate hotplugs memory
        assert by_target == {"libvirt": "restart", "kubevirt": "live"}
    finally:
        conn.close()


def test_conflict_names_the_other_manager_and_stops_the_run(
        kube_env: Path, kube_model: KubeModel, run_cli: Run) -> None:
    tree = kube_env
    write(tree, {"cluster.yaml": KUBE_CLUSTER, "vms/a.yaml": vm("a"), "vms/b.yaml": vm("b")})
    assert run_cli("apply", str(tree), "--auto-approve")[0] == 0
    # an operator edits a's memory with kubectl: kubectl now owns that field
    kube_model.put_object({"apiVersion": KV, "kind": "VirtualMachine",
                           "metadata": {"name": "a", "namespace": "default"},
                           "spec": {"template": {"spec": {"domain": {
                               "memory": {"guest": "3Gi"}}}}}}, manager="kubectl")
    write(tree, {"vms/a.yaml": vm("a", memory="2Gi"), "vms/b.yaml": vm("b", sockets=2)})
    # the dry run of a conflicts: the plan says it compared locally instead, and why
    code, out, err = run_cli("plan", str(tree))
    assert code == 1
    assert "VirtualMachine/default/a: server-side dry run failed" in err
    assert "compared with the local normalizer instead" in err
    code, out, err = run_cli("apply", str(tree), "--auto-approve", "--allow-restart")
    assert code == 1
    assert 'conflict with "kubectl"' in out + err and "memory.guest" in out + err
    assert "--force-conflicts" in out + err
    # nothing after it was applied: b kept its sockets
    assert "VirtualMachine/default/b failed" in out and "an earlier object conflicted" in out
    b = kube_model.get(KV, "VirtualMachine", "default", "b")
    assert b is not None and b["spec"]["template"]["spec"]["domain"]["cpu"]["sockets"] == 1
    # only on request: --force-conflicts takes the field
    code, out, err = run_cli("apply", str(tree), "--auto-approve", "--allow-restart",
                             "--force-conflicts")
    assert code == 0, out + err
    a = kube_model.get(KV, "VirtualMachine", "default", "a")
    assert a is not None and a["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "2Gi"


def test_an_unreachable_cluster_is_an_error_never_nothing(
        kube_env: Path, kube_model: KubeModel, run_cli: Run) -> None:
    """Rule 2: a cluster that does not answer stops plan, apply and prune; it is never
    read as "no VMs" (which would plan creations, or prune nothing silently)."""
    tree = kube_env
    write(tree, {"cluster.yaml": KUBE_CLUSTER, "vms/a.yaml": vm("a")})
    assert run_cli("apply", str(tree), "--auto-approve")[0] == 0
    kube_model.set_reachable(False)
    for argv in (("plan", str(tree)), ("apply", str(tree), "--auto-approve", "--prune")):
        code, out, err = run_cli(*argv)
        assert code == 2 and "not reachable" in err and out == "", (argv, out, err)
    kube_model.set_reachable(True)
    assert run_cli("plan", str(tree))[0] == 0


def test_another_installations_vms_are_neither_touched_nor_listed(
        kube_env: Path, kube_model: KubeModel, run_cli: Run, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Rule 18 on a cluster: each state directory is an installation, marked on what it
    applies; another installation's VM of the same name is a conflict, never adopted."""
    tree = kube_env
    write(tree, {"cluster.yaml": KUBE_CLUSTER, "vms/a.yaml": vm("a")})
    assert run_cli("apply", str(tree), "--auto-approve")[0] == 0
    first = kube_model.get(KV, "VirtualMachine", "default", "a")
    assert first is not None
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "other-installation"))
    code, out, err = run_cli("plan", str(tree))
    assert code == 2 and "another virtsync installation" in err and out == ""
    code, _, err = run_cli("apply", str(tree), "--auto-approve")
    assert code == 2
    code, out, err = run_cli("status", str(tree), "-o", "json")  # as on libvirt
    assert code == 2 and "another virtsync installation" in err
    code, out, _ = run_cli("status", str(tree), "-o", "json", "--all-installations")
    assert [row["name"] for row in json.loads(out)] == ["a"]
    after = kube_model.get(KV, "VirtualMachine", "default", "a")
    assert after is not None and after["metadata"]["labels"] == first["metadata"]["labels"]
