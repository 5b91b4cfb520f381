"""The cloud-init seed ISO from a template per shape (issue 13): byte for byte the image
pycdlib builds for the same seed (recording times aside, frozen here), for every shape
and for a shape met again with other contents; seeds written as a batch, and not read
back while untouched."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from node.storage import cloudinit
from node.storage.cloudinit import SeedFiles, build_iso, read_iso, seed_files
from node.storage.disks import TEMP_NAME
from reconciler.core import fsutil

UUID = "9b8f1c2e-0000-4000-8000-000000000001"


@pytest.fixture(autouse=True)
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)
    cloudinit._TEMPLATES.clear()


def _fresh(seed: SeedFiles) -> bytes:
    return cloudinit._pycdlib_image(seed.files())


SEEDS = [
    seed_files(instance_id=UUID, hostname="web", user_data="#cloud-config\nusers: []\n",
               network_data=None),
    seed_files(instance_id=UUID, hostname="db-01", user_data=None,
               network_data="version: 2\nethernets: {}\n"),
    seed_files(instance_id="i", hostname="h", user_data="é" * 3000, network_data=""),
    seed_files(instance_id=UUID, hostname="big", user_data="x" * 70_000, network_data=None),
]


@pytest.mark.parametrize("seed", SEEDS, ids=["user", "network-only", "utf8-empty", "big"])
def test_a_seed_is_the_image_pycdlib_builds(seed: SeedFiles) -> None:
    image = build_iso(seed)
    assert image == _fresh(seed)
    assert read_iso(image) == (cloudinit.VOLUME_LABEL, seed.files())


def test_a_shape_met_again_gets_its_own_contents() -> None:
    """Same names and sizes, other bytes: the cached image must not leak the first
    seed's contents into the second."""
    first = seed_files(instance_id=UUID, hostname="vm-0001", user_data="a: 1\n",
                       network_data=None)
    second = seed_files(instance_id=UUID.replace("1", "2"), hostname="vm-0002",
                        user_data="b: 2\n", network_data=None)
    assert build_iso(first) == _fresh(first)
    assert len(cloudinit._TEMPLATES) == 1
    assert build_iso(second) == _fresh(second)
    assert len(cloudinit._TEMPLATES) == 1  # the same shape: one template
    assert read_iso(build_iso(second))[1] == second.files()


def test_templates_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cloudinit, "TEMPLATES_KEPT", 3)
    for n in range(5):
        build_iso(seed_files(instance_id=UUID, hostname="h" * (n + 1), user_data=None,
                             network_data=None))
    assert len(cloudinit._TEMPLATES) == 3
    # A big seed is built right, and not kept.
    big = seed_files(instance_id=UUID, hostname="big", user_data="y" * (2 << 20),
                     network_data=None)
    assert build_iso(big) == _fresh(big)
    assert max(len(image) for image, _ in cloudinit._TEMPLATES.values()) \
        <= cloudinit.TEMPLATE_MAX_BYTES


def test_a_seed_this_process_wrote_is_read_back_only_once_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """write_seed trusts what this process wrote while the file keeps its stamp; a file
    changed since (same size, other bytes) is read, found different and rewritten."""
    path = tmp_path / "vms" / "web" / "cidata-ci.iso"
    mine = seed_files(instance_id=UUID, hostname="web", user_data="a: 1\n", network_data=None)
    other = seed_files(instance_id=UUID, hostname="web", user_data="b: 2\n", network_data=None)
    cloudinit.write_seeds([(path, mine)])
    assert read_iso(path.read_bytes())[1] == mine.files()
    unread = monkeypatch.context()
    with unread as m:
        m.setattr(cloudinit, "read_iso", lambda data: pytest.fail("read back"))
        assert cloudinit.write_seed(path, mine) is False
    time.sleep(0.01)
    path.write_bytes(build_iso(other))  # someone else's seed of the same shape
    assert cloudinit.write_seed(path, mine) is True
    assert read_iso(path.read_bytes())[1] == mine.files()


def test_batch_temp_files_are_named_as_the_sweeper_knows_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill -9 between write and rename leaves temp files that sweep_temp_files must
    recognise, as it does write_seed's."""
    temps: list[str] = []
    real = fsutil.os.replace

    def replace(src: str, dst: str) -> None:
        temps.append(Path(src).name)
        real(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", replace)
    seeds = [(tmp_path / f"vm{i}" / "cidata-ci.iso",
              seed_files(instance_id=UUID, hostname=f"vm{i}", user_data=None,
                         network_data=None)) for i in range(3)]
    cloudinit.write_seeds(seeds)
    assert len(temps) == 3 and all(TEMP_NAME.match(t) for t in temps), temps
