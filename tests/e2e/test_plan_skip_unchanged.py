"""Host-mode plans skip VMs that planned as unchanged with the same inputs before
(reconciler.planning.unchanged, issue 13) — and still see every change: a domain edited
behind virtsync's back, a changed file, a power change, an undefined domain. Through the
CLI on libvirt's test driver (fast lane)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import libvirt
import pytest

from e2e.test_apply_testdriver import Tree, run, vm

MEMO = "cache/plan-memo"


def plan_json(tree: Tree, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    run("plan", str(tree.root), "-o", "json")
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def memo_entries(tmp_path: Path) -> int:
    files = list((tmp_path / "state" / MEMO).glob("*.json"))
    return sum(len(json.loads(f.read_text())["unchanged"]) for f in files)


def applied_and_memoized(conn: Any, tree: Tree, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """Three VMs applied, then two plans: the first learns, the second is answered from
    the memo. Both print the same plan."""
    for name in ("web", "db", "cache"):
        tree.put(vm(name, run="Halted" if name == "db" else "Always"))
    assert run("apply", str(tree.root), "--auto-approve") == 0
    first = plan_json(tree, capsys)
    assert memo_entries(tmp_path) == 4  # three VMs and the Cluster object
    second = plan_json(tree, capsys)
    assert second == first and first["summary"]["changes"] == 0
    return first


def edit_behind_virtsyncs_back(conn: Any, name: str, *edits: tuple[str, str]) -> None:
    """What `virsh edit` does: redefine the domain from its XML with these changes."""
    dom = conn.lookupByName(f"e2e_{name}")
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
    for old, new in edits:
        xml, n = re.subn(old, new, xml, count=1)
        assert n == 1, (old, xml)
    conn.defineXML(xml)


def test_a_domain_edited_behind_virtsyncs_back_is_still_drift(
        conn: Any, tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    applied_and_memoized(conn, tree, tmp_path, capsys)
    # virsh edit: two cores instead of one, on a running VM the memo says is up to date
    edit_behind_virtsyncs_back(conn, "web", (r"<vcpu( [^>]*)?>1</vcpu>", r"<vcpu\1>2</vcpu>"),
                               ("cores='1'", "cores='2'"))
    doc = plan_json(tree, capsys)
    assert len(doc["changes"]) == 1 and "web" in json.dumps(doc["changes"][0]["key"])
    assert any("cores" in f["path"] for f in doc["changes"][0]["fields"]), doc["changes"]
    assert doc["summary"]["unchanged"] == 3
    # apply puts it back; the plan after that is empty again
    assert run("apply", str(tree.root), "--auto-approve", "--allow-restart") == 0
    assert plan_json(tree, capsys)["summary"]["changes"] == 0


def test_memory_edited_behind_virtsyncs_back_on_a_stopped_vm_is_still_drift(
        conn: Any, tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    applied_and_memoized(conn, tree, tmp_path, capsys)
    edit_behind_virtsyncs_back(conn, "db", ("<memory unit='KiB'>65536</memory>",
                                            "<memory unit='KiB'>131072</memory>"),
                               ("<currentMemory unit='KiB'>65536</currentMemory>",
                                "<currentMemory unit='KiB'>131072</currentMemory>"))
    doc = plan_json(tree, capsys)
    assert len(doc["changes"]) == 1 and "db" in json.dumps(doc["changes"][0]["key"])
    assert any("memory" in f["path"] for f in doc["changes"][0]["fields"]), doc["changes"]


def test_a_changed_file_is_planned_though_its_vm_was_memoized(
        conn: Any, tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    applied_and_memoized(conn, tree, tmp_path, capsys)
    tree.put(vm("cache", cores=2))
    doc = plan_json(tree, capsys)
    assert len(doc["changes"]) == 1 and "cache" in json.dumps(doc["changes"][0]["key"])
    assert doc["summary"]["unchanged"] == 3


def test_power_and_undefine_behind_virtsyncs_back_are_planned(
        conn: Any, tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    applied_and_memoized(conn, tree, tmp_path, capsys)
    conn.lookupByName("e2e_web").destroy()  # runStrategy Always, now off
    dom = conn.lookupByName("e2e_cache")
    dom.destroy()
    dom.undefine()
    doc = plan_json(tree, capsys)
    actions = {json.dumps(c["key"]): c["actions"] for c in doc["changes"]}
    assert len(actions) == 2, doc["changes"]
    assert any("web" in k and "start" in a for k, a in actions.items())
    assert any("cache" in k and "create" in a for k, a in actions.items())


def test_the_memo_changes_no_plan_output(
        conn: Any, tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Unpinned-identity notes and counts are the same whether the memo answered."""
    tree.put(vm("web"))
    tree.put(vm("db", run="Halted"))
    assert run("apply", str(tree.root), "--auto-approve") == 0
    capsys.readouterr()
    texts = []
    for _ in range(3):
        run("plan", str(tree.root))
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] == texts[2]
    assert "unpinned" in texts[0].lower() or "identity" in texts[0].lower()
    assert memo_entries(tmp_path) == 3


def seed_user_data(tree: Tree, name: str) -> bytes:
    from node.storage.cloudinit import read_iso

    iso = tree.storage / "e2e" / "vms" / name / "cidata-ci.iso"
    return read_iso(iso.read_bytes())[1]["user-data"]


def test_a_vm_holding_a_secret_plans_the_same_from_its_digested_documents(
        conn: Any, tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`plan` takes a file holding a secret from the cache with the secret digested
    (rule 10: only digests are stored); the plan is the same as from the parsed file,
    a changed secret is still a change, and `apply` writes the real secret, never the
    digest."""
    tree.put(vm("web", user_data="#cloud-config\npassword: first-9d41\n"))
    tree.put(vm("db", run="Halted"))
    assert run("apply", str(tree.root), "--auto-approve") == 0
    docs = [plan_json(tree, capsys) for _ in range(3)]  # parsed, then from the cache
    assert docs[0] == docs[1] == docs[2] and docs[0]["summary"]["changes"] == 0
    stored = b"".join(p.read_bytes() for p in (tmp_path / "state").rglob("*") if p.is_file())
    assert b"first-9d41" not in stored
    tree.put(vm("web", user_data="#cloud-config\npassword: second-9d41\n"))
    changed = plan_json(tree, capsys)
    assert len(changed["changes"]) == 1 and "second-9d41" not in json.dumps(changed)
    again = plan_json(tree, capsys)  # now from the cache, digested
    assert again == changed
    # apply reads the file digested too, finds work, and plans it again from the file
    assert run("apply", str(tree.root), "--auto-approve", "--allow-restart") == 0
    assert b"second-9d41" in seed_user_data(tree, "web")
    assert plan_json(tree, capsys)["summary"]["changes"] == 0
    seed = (tree.storage / "e2e" / "vms" / "web" / "cidata-ci.iso").stat().st_mtime_ns
    assert run("apply", str(tree.root), "--auto-approve") == 0  # nothing to do: no write
    assert "No changes" in capsys.readouterr().err
    assert (tree.storage / "e2e" / "vms" / "web" / "cidata-ci.iso").stat().st_mtime_ns == seed


def test_no_cache_plans_everything_in_full_and_leaves_the_cache_alone(
        conn: Any, tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = applied_and_memoized(conn, tree, tmp_path, capsys)
    shutil.rmtree(tmp_path / "state" / "cache")
    capsys.readouterr()
    run("plan", str(tree.root), "-o", "json", "--no-cache")
    assert json.loads(capsys.readouterr().out) == first
    assert not (tmp_path / "state" / "cache").exists()
