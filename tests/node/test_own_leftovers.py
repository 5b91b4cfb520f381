"""A VM's own leftovers (files in its directory that none of its volumes uses) are the
same whether a used file is named exactly as the directory listing names it or in
another spelling of the same path: only equal strings skip pathlib's comparison
(issue 13), never a path that differs in spelling only."""

from __future__ import annotations

from pathlib import Path

from node.storage.disks import own_leftovers


def _dir(tmp_path: Path) -> Path:
    vm_dir = tmp_path / "team" / "vms" / "web"
    vm_dir.mkdir(parents=True)
    for name in ("root.qcow2", "cidata.iso", "old-data.qcow2", ".root.qcow2.tmp123"):
        (vm_dir / name).write_bytes(b"x")
    (vm_dir / "sub").mkdir()  # a folder is never a leftover
    return vm_dir


def test_files_no_volume_uses_are_listed_in_path_order(tmp_path: Path) -> None:
    vm_dir = _dir(tmp_path)
    used = [str(vm_dir / "root.qcow2"), str(vm_dir / "cidata.iso")]
    assert own_leftovers(str(vm_dir), used) == [
        str(vm_dir / ".root.qcow2.tmp123"), str(vm_dir / "old-data.qcow2")]


def test_another_spelling_of_a_used_file_still_counts_as_used(tmp_path: Path) -> None:
    vm_dir = _dir(tmp_path)
    used = [f"{vm_dir}//root.qcow2", f"{vm_dir}/./cidata.iso", f"{vm_dir}/old-data.qcow2"]
    assert own_leftovers(str(vm_dir) + "/", used) == [str(vm_dir / ".root.qcow2.tmp123")]


def test_a_missing_directory_has_no_leftovers(tmp_path: Path) -> None:
    assert own_leftovers(str(tmp_path / "absent"), []) == []


def test_the_temp_sweep_takes_old_temp_files_only_and_follows_no_link(
        tmp_path: Path) -> None:
    """sweep_temp_files reads folders with os.scandir (issue 13): the same files go as
    before, never one behind a symbolic link (a linked folder or a linked temp name)."""
    import os
    import time

    from node.storage.disks import NodeStorage, sweep_temp_files

    root = tmp_path / "storage"
    vm_dir, claims = root / "team" / "vms" / "web", root / "team" / "claims"
    vm_dir.mkdir(parents=True)
    claims.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "team" / "vms" / "linked").symlink_to(outside)
    old = [vm_dir / ".cidata-0a1b2c3d", claims / ".data.qcow2.k9x2_abc"]
    kept = [vm_dir / ".cidata-young123", vm_dir / "root.qcow2",
            outside / ".cidata-0a1b2c3d"]
    for p in [*old, *kept]:
        p.write_bytes(b"x")
    (vm_dir / ".cidata-linked12").symlink_to(outside / ".cidata-0a1b2c3d")
    for p in [*old, *kept[1:]]:
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    storage = NodeStorage.of(root, tmp_path / "images")
    assert sweep_temp_files(storage, time.time()) == tuple(sorted(str(p) for p in old))
    assert all(p.exists() for p in kept) and not any(p.exists() for p in old)
    assert (vm_dir / ".cidata-linked12").is_symlink()


def test_the_sweep_lists_the_folders_the_glob_did(tmp_path: Path) -> None:
    """sweep_folders (os.scandir, issue 13) gives the real folders among
    root.glob("*/claims") and root.glob("*/vms/*"), the glob it replaces: hidden names
    match `*`, a linked namespace or `vms` folder is followed, a linked VM or claims
    folder, a file, a missing `vms` are not."""
    from node.storage.disks import _real_dir, sweep_folders

    root = tmp_path / "storage"
    outside = tmp_path / "outside"
    (outside / "vms" / "far").mkdir(parents=True)
    (outside / "claims").mkdir()
    for ns in ("team", ".hidden", "only-claims", "only-vms"):
        (root / ns).mkdir(parents=True)
    for ns in ("team", ".hidden", "only-vms"):
        for vm in ("web", ".tmp-vm"):
            (root / ns / "vms" / vm).mkdir(parents=True)
    for ns in ("team", ".hidden", "only-claims"):
        (root / ns / "claims").mkdir()
    (root / "team" / "vms" / "a-file").write_bytes(b"x")
    (root / "team" / "vms" / "linked-vm").symlink_to(outside / "vms" / "far")
    (root / "linked-ns").symlink_to(outside)
    (root / "linked-claims").mkdir()
    (root / "linked-claims" / "claims").symlink_to(outside / "claims")
    (root / "vms-link").mkdir()
    (root / "vms-link" / "vms").symlink_to(outside / "vms")
    (root / "vms-file").mkdir()
    (root / "vms-file" / "vms").write_bytes(b"x")
    (root / "stray-file").write_bytes(b"x")
    globbed = [p for p in [*root.glob("*/claims"), *root.glob("*/vms/*")] if _real_dir(p)]
    assert sorted(sweep_folders(str(root))) == sorted(str(p) for p in globbed)
    assert str(root / ".hidden" / "vms" / ".tmp-vm") in sweep_folders(str(root))
    assert sweep_folders(str(tmp_path / "absent")) == []
