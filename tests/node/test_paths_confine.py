"""Safety rule 9: disk paths and qcow2 backing chains stay inside the node's directories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from node.storage.paths import UnsafePath, checked_chain, confine, image_info, safe_component


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def overlay(top: Path, backing: str | Path, backing_fmt: str) -> None:
    """A qcow2 on top of `backing`, written without opening it (-u), as an attacker would."""
    qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", str(backing), "-F", backing_fmt,
             str(top), "1M")  # fmt: skip


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path, Path]:
    storage, images, outside = tmp_path / "storage", tmp_path / "images", tmp_path / "outside"
    for d in (storage, images, outside):
        d.mkdir()
    return storage, images, outside


@pytest.mark.parametrize("name", ["data", "vm-1", "a.b", "0"])
def test_safe_component_accepts_dns_names(name: str) -> None:
    assert safe_component(name, "claim") == name


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "A", "a..b", "-a", "a\x00", "x" * 254])
def test_safe_component_refuses_path_tricks(name: str) -> None:
    with pytest.raises(UnsafePath, match="cannot be used as a file name"):
        safe_component(name, "claim")


def test_confine_accepts_relative_and_absolute_inside(dirs: tuple[Path, Path, Path]) -> None:
    storage, _, _ = dirs
    assert confine(storage, "ns/disk.img", "hostDisk") == storage.resolve() / "ns" / "disk.img"
    assert confine(storage, storage / "x.img", "hostDisk") == storage.resolve() / "x.img"


@pytest.mark.parametrize("bad", ["../outside/x.img", "/etc/passwd", "a/../../x", "."])
def test_confine_refuses_paths_outside(dirs: tuple[Path, Path, Path], bad: str) -> None:
    storage, _, _ = dirs
    with pytest.raises(UnsafePath, match="hostDisk"):
        confine(storage, bad, "hostDisk")


def test_confine_refuses_symlink_escape(dirs: tuple[Path, Path, Path]) -> None:
    storage, _, outside = dirs
    (outside / "secret.img").write_bytes(b"x")
    (storage / "link.img").symlink_to(outside / "secret.img")
    (storage / "linkdir").symlink_to(outside)
    with pytest.raises(UnsafePath, match="outside"):
        confine(storage, "link.img", "hostDisk")
    with pytest.raises(UnsafePath, match="outside"):
        confine(storage, "linkdir/new.img", "hostDisk")


def test_confine_follows_symlinks_that_stay_inside(dirs: tuple[Path, Path, Path]) -> None:
    storage, _, _ = dirs
    (storage / "real.img").write_bytes(b"x")
    (storage / "alias.img").symlink_to(storage / "real.img")
    assert confine(storage, "alias.img", "hostDisk") == (storage / "real.img").resolve()


def test_chain_inside_roots_is_walked_top_first(dirs: tuple[Path, Path, Path]) -> None:
    storage, images, _ = dirs
    qemu_img("create", "-q", "-f", "qcow2", str(images / "base.qcow2"), "16M")
    overlay(storage / "top.qcow2", images / "base.qcow2", "qcow2")
    chain = checked_chain(storage / "top.qcow2", "qcow2", [storage, images], "containerDisk")
    assert [Path(c.path).name for c in chain] == ["top.qcow2", "base.qcow2"]
    assert chain[1].virtual_size == 16 * 1024 * 1024


def test_chain_refuses_backing_file_outside(dirs: tuple[Path, Path, Path]) -> None:
    storage, images, outside = dirs
    qemu_img("create", "-q", "-f", "raw", str(outside / "host.raw"), "1M")
    overlay(storage / "evil.qcow2", str(outside / "host.raw"), "raw")
    with pytest.raises(UnsafePath, match=r"host\.raw is outside"):
        checked_chain(storage / "evil.qcow2", "qcow2", [storage, images], "volume data")


def test_chain_refuses_relative_backing_that_climbs_out(dirs: tuple[Path, Path, Path]) -> None:
    storage, _, outside = dirs
    qemu_img("create", "-q", "-f", "qcow2", str(outside / "b.qcow2"), "1M")
    overlay(storage / "evil.qcow2", "../outside/b.qcow2", "qcow2")
    with pytest.raises(UnsafePath, match="outside"):
        checked_chain(storage / "evil.qcow2", "qcow2", [storage], "volume data")


def test_chain_refuses_backing_symlink_escape(dirs: tuple[Path, Path, Path]) -> None:
    storage, _, outside = dirs
    qemu_img("create", "-q", "-f", "qcow2", str(outside / "b.qcow2"), "1M")
    (storage / "b.qcow2").symlink_to(outside / "b.qcow2")
    overlay(storage / "top.qcow2", "b.qcow2", "qcow2")
    with pytest.raises(UnsafePath, match="outside"):
        checked_chain(storage / "top.qcow2", "qcow2", [storage], "volume data")


def test_chain_refuses_protocol_backing(dirs: tuple[Path, Path, Path]) -> None:
    storage, _, _ = dirs
    target = 'json:{"driver":"file","filename":"/etc/hostname"}'
    overlay(storage / "evil.qcow2", target, "raw")
    with pytest.raises(UnsafePath, match="not a plain file"):
        checked_chain(storage / "evil.qcow2", "qcow2", [storage], "volume data")


def test_chain_refuses_backing_without_format(dirs: tuple[Path, Path, Path]) -> None:
    storage, _, _ = dirs
    qemu_img("create", "-q", "-f", "qcow2", str(storage / "b.qcow2"), "1M")
    top = storage / "top.qcow2"
    overlay(top, "b.qcow2", "qcow2")
    # qemu-img no longer writes such images; older ones exist. Cut the header extension
    # list at the backing-format extension (magic 0xe2792aca) to make one.
    data = bytearray(top.read_bytes())
    at = data.find(bytes.fromhex("e2792aca"))
    assert at > 0
    data[at : at + 4] = bytes(4)
    top.write_bytes(bytes(data))
    assert image_info(top, "qcow2").backing_format is None
    with pytest.raises(UnsafePath, match="without a stated"):
        checked_chain(storage / "top.qcow2", "qcow2", [storage], "volume data")


def test_chain_refuses_external_data_file_outside(dirs: tuple[Path, Path, Path]) -> None:
    storage, _, outside = dirs
    data_file = f"data_file={outside / 'data.raw'}"
    qemu_img("create", "-q", "-f", "qcow2", "-o", data_file, str(storage / "top.qcow2"), "1M")
    with pytest.raises(UnsafePath, match="data file"):
        checked_chain(storage / "top.qcow2", "qcow2", [storage], "volume data")


def test_stated_raw_format_is_never_probed(dirs: tuple[Path, Path, Path]) -> None:
    # A guest can write a qcow2 header (with a hostile backing file) into its raw disk.
    # Stated as raw, the file is data: no backing chain is seen or followed.
    storage, _, outside = dirs
    overlay(storage / "guest-written.img", str(outside / "x"), "raw")
    chain = checked_chain(storage / "guest-written.img", "raw", [storage], "hostDisk")
    assert len(chain) == 1 and chain[0].format == "raw" and chain[0].backing_file is None
    assert image_info(storage / "guest-written.img", None).format == "qcow2"
