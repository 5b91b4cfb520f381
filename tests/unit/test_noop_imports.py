"""A host-mode `plan` with nothing to do loads only what planning needs (issue 13: a no-op
plan is mostly start-up): not ruamel's round-trip parser (only a finding's position needs
it), not uuid (it imports platform; only a new id or a journal needs it), not traceback
(an internal error's report), not the domain builder (only a define renders), nor what
only a create, stop, migration, move, saved plan or git revision needs. Findings
that need a position still get one (the duplicate-name case below)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

NEVER = ("ruamel.yaml", "reconciler.tree.positions", "uuid", "platform", "traceback",
         "node.domain.builder",
         # what only a create, stop, migration, move, saved plan or git revision needs
         # (subprocess: qemu-img and git; the tree here is no git work tree)
         # (tests/real/test_noop_imports_real.py: the same with VMs defined)
         "node.domain.model", "node.domain.xml", "node.lifecycle.stop",
         "node.storage.cloudinit", "node.storage.base_facts", "node.cluster.migration",
         "reconciler.planning.savedplan", "reconciler.planning.plan_codec",
         "reconciler.planning.eviction", "reconciler.planning.migratable",
         "reconciler.tree.gitsource", "socket", "subprocess")
HOST_MODE = ("reconciler.execute.planmemo", "reconciler.execute.cordons",
             "reconciler.execute.inventory_store", "libvirt")
PROBE = f"""
import sys
from reconciler.cli import main
code = main(sys.argv[1:])
print("CODE", code)
print("LOADED", ",".join(sorted(m for m in {NEVER!r} if m in sys.modules)))
"""


def _tree(root: Path, names: list[str]) -> Path:
    (root / "vms").mkdir(parents=True)
    (root / "cluster.yaml").write_text(yaml.safe_dump({
        "apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "t"},
        "spec": {"nodes": [{"name": "n1", "uri": "test:///default",
                            "storageDir": str(root / "storage"),
                            "imageDir": str(root / "images")}]}}))
    for i, name in enumerate(names):
        (root / "vms" / f"f{i}.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": "t"},
            "spec": {"runStrategy": "Halted", "template": {"spec": {
                "domain": {"memory": {"guest": "64Mi"}, "devices": {}}}}}}))
    return root


def _probe(tree: Path, state: Path, *argv: str) -> tuple[str, str, str]:
    env = dict(os.environ, VIRTSYNC_STATE_DIR=str(state),
               VIRTSYNC_INSTALLATION_ID="0" * 32)
    done = subprocess.run([sys.executable, "-c", PROBE, *argv, str(tree)], capture_output=True,
                          text=True, env=env, timeout=120)
    lines = done.stdout.splitlines()
    code = next(ln for ln in lines if ln.startswith("CODE")).removeprefix("CODE ")
    loaded = next(ln for ln in lines if ln.startswith("LOADED")).removeprefix("LOADED").strip()
    return code, loaded, done.stderr


def test_noop_host_plan_loads_no_round_trip_parser_uuid_traceback_or_builder(
        tmp_path: Path) -> None:
    # The Cluster object is all there is (test:///default forgets domains between
    # processes): once applied, the plan has nothing to do.
    tree = _tree(tmp_path / "repo", [])
    code, _, err = _probe(tree, tmp_path / "state", "apply", "--auto-approve")
    assert code == "0", err
    code, loaded, err = _probe(tree, tmp_path / "state", "plan")
    assert code == "0", err
    assert loaded == ""
    # A no-op apply likewise (its lock note names the host without socket).
    code, loaded, err = _probe(tree, tmp_path / "state", "apply", "--auto-approve")
    assert code == "0", err
    assert "No changes." in err, err
    assert loaded == ""


def test_a_git_mode_plan_loads_none_of_host_modes_stack(tmp_path: Path) -> None:
    # plan_cmd.preload imports host mode's modules at start-up: only for host mode.
    tree = _tree(tmp_path / "repo", ["web"])
    for git in (["init", "-q"], ["add", "-A"],
                ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"]):
        subprocess.run(["git", "-C", str(tree), *git], check=True)
    env = dict(os.environ, VIRTSYNC_STATE_DIR=str(tmp_path / "state"))
    probe = PROBE.replace(repr(NEVER), repr(HOST_MODE))
    done = subprocess.run([sys.executable, "-c", probe, "plan", str(tree), "--base", "HEAD"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert "CODE 0" in done.stdout, done.stderr
    assert "LOADED \n" in done.stdout + "\n"


def test_a_finding_that_needs_a_position_still_gets_its_line(tmp_path: Path) -> None:
    # Two files claim one name: the finding names the first claim's file and line.
    tree = _tree(tmp_path / "repo", ["same", "same"])
    code, loaded, err = _probe(tree, tmp_path / "state", "plan")
    assert code != "0"
    assert "reconciler.tree.positions" in loaded.split(",")
    assert "f0.yaml:" in err and "f1.yaml" in err, err
