"""Storage ownership on qemu:///system through the CLI (issue 8, safety rule 13): pruning a
Delete-policy VM that mounts another VM's claim deletes exactly the files the plan lists
— its own — and the other VM's disk, domain and booting guest survive; a VM whose disk
file went missing is reported by `status` and `plan`, and comes back only with
--allow-data-loss."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import test_cli_real as cli_real
from . import tinyguest

NS = f"vsstor{tinyguest.SUFFIX}"
URI = "qemu:///system"
DELETE = {"virtsync.io/disk-policy": "Delete"}


def vm(name: str, *, run: str = "Halted", boot: bool = False,
       annotations: dict[str, str] | None = None,
       mount: str | None = None) -> dict[str, Any]:
    disks: list[Any] = [{"name": "data", "disk": {"bus": "virtio"}}]
    volumes: list[Any] = [{"name": "data", "dataVolume": {"name": f"{name}-data"}}]
    if mount:  # another VM's claim
        disks.append({"name": "peer", "disk": {"bus": "virtio"}})
        volumes.append({"name": "peer", "persistentVolumeClaim": {"claimName": mount}})
    domain: dict[str, Any] = {"memory": {"guest": "128Mi"}, "devices": {
        "disks": disks, "interfaces": [{"name": "default", "masquerade": {}}]}}
    if boot:
        domain["firmware"] = tinyguest.kernel_boot()
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": meta,
            "spec": {"runStrategy": run,
                     "dataVolumeTemplates": [{"metadata": {"name": f"{name}-data"}, "spec": {
                         "storage": {"resources": {"requests": {"storage": "8Mi"}}},
                         "source": {"blank": {}}}}],
                     "template": {"spec": {"terminationGracePeriodSeconds": 20,
                                           "domain": domain,
                                           "networks": [{"name": "default", "pod": {}}],
                                           "volumes": volumes}}}}


class Repo(cli_real.Repo):
    def __init__(self, node_root: Path, tiny_guest_dir: Path) -> None:
        super().__init__(node_root, tiny_guest_dir, prefix="stor")

    def claim(self, name: str) -> Path:
        return self.storage / NS / "claims" / f"{name}.qcow2"

    def files(self) -> set[str]:
        """Disk files (virtsync's own trees — identity, console logs — left out)."""
        return {str(p) for p in self.storage.rglob("*") if p.is_file()
                and not any(part.startswith(".virtsync") for part in p.parts)}

    def plan(self) -> dict[str, Any]:
        r = self.virtsync("plan", str(self.root), "-o", "json")
        assert r.returncode == 1, r.stdout + r.stderr
        return dict(json.loads(r.stdout))

    def status(self) -> dict[str, Any]:
        r = self.virtsync("status", str(self.root), "-o", "json")
        assert r.returncode == 0, r.stderr
        return {row["name"]: row for row in json.loads(r.stdout)}


def ours(conn: Any) -> dict[str, Any]:
    return {d.name(): d for d in conn.listAllDomains() if d.name().startswith(f"{NS}_")}


def test_prune_deletes_exactly_the_planned_files_and_the_shared_claim_survives(
        libvirt_conn: Any, node_root: Path, tiny_guest_dir: Path) -> None:
    import libvirt

    repo = Repo(node_root, tiny_guest_dir)
    repo.put(vm("keeper", run="Always", boot=True))
    # Halted: rule 6 keeps a claim out of two running domains.
    repo.put(vm("wiper", annotations=DELETE, mount="keeper-data"))
    repo.put(vm("blank"))
    try:
        r = repo.virtsync("apply", str(repo.root))
        assert r.returncode == 0, r.stderr
        cli_real.wait_console(repo.storage, f"{NS}_keeper", "VS-BOOT", timeout=90)
        keeper_disk, wiper_disk = repo.claim("keeper-data"), repo.claim("wiper-data")
        assert keeper_disk.is_file() and wiper_disk.is_file()

        (repo.root / "vms" / "wiper.yaml").unlink()
        (change,) = repo.plan()["changes"]
        deletes = {d["path"] for d in change["disks"] if d["action"] == "delete"}
        keeps = {d["path"]: d["reason"] for d in change["disks"] if d["action"] == "keep"}
        assert deletes == {str(wiper_disk)}
        assert keeps == {str(keeper_disk):
                         f"claim keeper-data is in use by VirtualMachine/{NS}/keeper; not "
                         "owned by this VM (no dataVolumeTemplate of that name)"}

        before = repo.files()
        r = repo.virtsync("apply", str(repo.root), "--prune", "--allow-data-loss")
        assert r.returncode == 0, r.stderr
        assert before - repo.files() == deletes, "exactly the planned files are deleted"
        assert f"{NS}_wiper" not in ours(libvirt_conn)
        assert keeper_disk.is_file()
        r = repo.virtsync("plan", str(repo.root), "--detailed-exitcode")
        assert r.returncode == 0, r.stdout + r.stderr

        # The surviving VM's domain is still valid: powered off hard, it boots again.
        dom = ours(libvirt_conn)[f"{NS}_keeper"]
        dom.destroy()
        for log in repo.storage.rglob(f"{NS}_keeper*.log"):
            log.write_text("")
        r = repo.virtsync("start", f"{NS}/keeper", "--path", str(repo.root))
        assert r.returncode == 0, r.stderr
        cli_real.wait_console(repo.storage, f"{NS}_keeper", "VS-BOOT", timeout=90)

        # A missing disk file: reported by status and plan, never "No changes".
        repo.claim("blank-data").unlink()
        row = repo.status()["blank"]
        assert row["printableStatus"] == "ErrorPvcNotFound" and row["drift"] is True
        (change,) = repo.plan()["changes"]
        assert change["name"] == "blank" and change["disruption"] == "data-loss"
        assert [f["after"] for f in change["fields"]] == ["created again, blank"]
        assert repo.virtsync("apply", str(repo.root)).returncode == 1  # refused
        assert not repo.claim("blank-data").exists()
        r = repo.virtsync("apply", str(repo.root), "--allow-data-loss")
        assert r.returncode == 0, r.stderr
        assert repo.claim("blank-data").is_file()
        assert repo.status()["blank"]["printableStatus"] == "Stopped"
        assert repo.virtsync("plan", str(repo.root), "--detailed-exitcode").returncode == 0
    finally:
        for d in ours(libvirt_conn).values():
            if d.isActive():
                d.destroy()
            d.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
