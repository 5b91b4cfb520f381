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
