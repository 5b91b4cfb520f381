"""The cloud-init seed ISO from a template per shape (issue 13): byte for byte the image
pycdlib builds for the same seed (recording times aside, frozen here), for every shape
and for a shape met again with other contents."""

from __future__ import annotations

import time

import pytest

from node.storage import cloudinit
from node.storage.cloudinit import SeedFiles, build_iso, read_iso, seed_files

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
