"""Rule 17 through the CLI on libvirt's test driver: a rename is a replace that carries
the identity (UUID, serial, MACs, disk serials), the disks and the power state over;
a step that fails leaves the VM with a working domain (the old one, restored)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import libvirt
import pytest
import yaml
from lxml import etree

from e2e.test_apply_testdriver import Tree, domains, run, vm

RECORDS = ".virtsync-identity/e2e"


def identity(conn: Any, name: str) -> tuple[str, str, str, str]:
    """(uuid, serial, MACs, disk serials) as the domain shows them to the guest."""
    root = etree.fromstring(conn.lookupByName(f"e2e_{name}").XMLDesc(
        libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
    return (root.findtext("uuid") or "",
            root.findtext("sysinfo/system/entry[@name='serial']") or "",
            ",".join(m.get("address", "") for m in root.iterfind("devices/interface/mac")),
            ",".join(s.text or "" for s in root.iterfind("devices/disk/serial")))


def disk_files(conn: Any, name: str) -> list[str]:
    root = etree.fromstring(conn.lookupByName(f"e2e_{name}").XMLDesc().encode())
    return sorted(s.get("file", "") for s in root.iterfind("devices/disk/source")
                  if "data" in s.get("file", ""))


def rename(tree: Tree, old: str, new: str, edit: Any = None) -> None:
    body = yaml.safe_load((tree.root / "vms" / f"{old}.yaml").read_text())
    body["metadata"]["name"] = new
    if edit is not None:
        edit(body)
    tree.remove(old)
    tree.put(body)


def plan_json(tree: Tree, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    run("plan", str(tree.root), "-o", "json")
    return list(json.loads(capsys.readouterr().out)["changes"])


@pytest.mark.parametrize("strategy", ["Always", "Manual"])
def test_pinned_rename_carries_identity_disks_and_power_state(
        conn: Any, tree: Tree, strategy: str, capsys: pytest.CaptureFixture[str]) -> None:
    tree.put(vm("web", run=strategy))
    tree.put(vm("other"))  # another VM on the node: its MACs are not touched
    assert run("apply", str(tree.root)) == 0
    before, files, running = identity(conn, "web"), disk_files(conn, "web"), \
        domains(conn)["e2e_web"]
    assert run("pin", str(tree.root)) == 0
    rename(tree, "web", "web-renamed")
    (change,) = [c for c in plan_json(tree, capsys) if c["name"] == "web-renamed"]
    # A replace, written as Terraform does (plan format 2).
    assert change["actions"][:2] == ["delete", "create"]
    assert change["previous_key"].endswith("/web")
    assert run("apply", str(tree.root), "--allow-restart") == 0, capsys.readouterr().err
    assert "e2e_web" not in domains(conn)
    assert domains(conn)["e2e_web-renamed"] is running  # Manual stopped stays stopped
    assert identity(conn, "web-renamed") == before
    assert disk_files(conn, "web-renamed") == files
    records = tree.storage / RECORDS
    assert not (records / "web.json").exists() and (records / "web-renamed.json").exists()
    assert plan_json(tree, capsys) == []


def test_rename_with_only_a_mac_pinned_carries_the_whole_identity(
        conn: Any, tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    tree.put(vm("db"))
    assert run("apply", str(tree.root)) == 0
    before = identity(conn, "db")

    def pin_mac_upper(body: dict[str, Any]) -> None:
        iface = body["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]
        iface["macAddress"] = before[2].upper()  # another spelling of the same MAC

    rename(tree, "db", "db2", pin_mac_upper)
    assert run("apply", str(tree.root), "--allow-restart") == 0, capsys.readouterr().err
    assert identity(conn, "db2") == before and domains(conn) == {"e2e_db2": True}
    assert plan_json(tree, capsys) == []


def test_unpinned_rename_is_a_new_vm_and_the_old_one_keeps_working(
        conn: Any, tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing in git links the new name to the old VM (docs/identity.md: pin first):
    the plan creates the new VM and lists the old one for pruning; nothing breaks."""
    tree.put(vm("app"))
    assert run("apply", str(tree.root)) == 0
    old = identity(conn, "app")

    def own_disk(body: dict[str, Any]) -> None:  # a new VM with a disk of its own
        body["spec"]["dataVolumeTemplates"][0]["metadata"]["name"] = "app2-data"
        body["spec"]["template"]["spec"]["volumes"][1]["dataVolume"]["name"] = "app2-data"

    rename(tree, "app", "app2", own_disk)
    actions = {c["name"]: c["actions"] for c in plan_json(tree, capsys)}
    assert actions == {"app2": ["create", "start"], "app": ["delete"]}
    assert run("apply", str(tree.root)) == 0
    assert domains(conn) == {"e2e_app": True, "e2e_app2": True}
    assert identity(conn, "app") == old and identity(conn, "app2")[0] != old[0]
    assert run("apply", str(tree.root), "--prune") == 0
    assert domains(conn) == {"e2e_app2": True}


def test_failed_rename_leaves_the_old_domain_working(
        conn: Any, tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    tree.put(vm("svc"))
    assert run("apply", str(tree.root)) == 0
    assert run("pin", str(tree.root)) == 0
    before = identity(conn, "svc")

    def add_missing_claim(body: dict[str, Any]) -> None:
        tmpl = body["spec"]["template"]["spec"]
        tmpl["domain"]["devices"]["disks"].append({"name": "gone", "disk": {"bus": "virtio"}})
        tmpl["volumes"].append({"name": "gone", "persistentVolumeClaim": {"claimName": "nope"}})

    # The new definition cannot be built (a claim that exists nowhere): a real failure
    # after the identity was carried over to the new name.
    rename(tree, "svc", "svc2", add_missing_claim)
    assert run("apply", str(tree.root), "--allow-restart") == 1
    assert "nope" in capsys.readouterr().out
    assert domains(conn) == {"e2e_svc": True}
    assert identity(conn, "svc") == before
    records = tree.storage / RECORDS
    assert (records / "svc.json").exists() and not (records / "svc2.json").exists()

    # Fixed in git: the rename goes through, identity carried over.
    rename(tree, "svc2", "svc2")
    body = yaml.safe_load((tree.root / "vms" / "svc2.yaml").read_text())
    tmpl = body["spec"]["template"]["spec"]
    tmpl["domain"]["devices"]["disks"].pop()
    tmpl["volumes"].pop()
    tree.put(body)
    assert run("apply", str(tree.root), "--allow-restart") == 0, capsys.readouterr().err
    assert domains(conn) == {"e2e_svc2": True} and identity(conn, "svc2") == before


def test_watch_renames_a_pinned_vm_carrying_its_identity(conn: Any, tree: Tree,
                                                         tmp_path: Path) -> None:
    import io

    from reconciler.backends.libvirt import LibvirtBackend
    from reconciler.execute.apply import ApplyOptions
    from reconciler.watch.logs import JsonLogger
    from reconciler.watch.watcher import Watcher, WatchOptions

    tree.put(vm("cache"))
    watcher = Watcher(WatchOptions(path=str(tree.root), agent=False,
                                   apply=ApplyOptions(allow_restart=True)),
                      state=tmp_path / "state",
                      backend_factory=lambda ms: LibvirtBackend.from_manifests(
                          ms, state=tmp_path / "state"),
                      log=JsonLogger(io.StringIO(), level="debug"))
    try:
        assert watcher.startup().result == "ok"
        assert run("pin", str(tree.root)) == 0
        assert watcher.resync().changes == 0
        before = identity(conn, "cache")
        rename(tree, "cache", "cache2")  # saved: one file gone, one new
        report = watcher.on_change({str(tree.root / "vms" / "cache.yaml"),
                                    str(tree.root / "vms" / "cache2.yaml")})
        assert [(o.key.name, o.word) for o in report.outcomes] == [("cache2", "replaced")]
        assert domains(conn) == {"e2e_cache2": True} and identity(conn, "cache2") == before
        assert watcher.resync().changes == 0
    finally:
        watcher.close()
