"""Rule 18: one installation id per state directory, generated once and then only read;
never silently replaced (a new id would leave every VM of the installation unmanaged)."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest

from reconciler.core.model import VirtsyncError
from reconciler.core.statedir import INSTALLATION_ENV, INSTALLATION_FILE, installation_id


def test_generated_once_then_read(tmp_path: Path) -> None:
    first = installation_id(tmp_path / "state")
    assert len(first) == 32 and installation_id(tmp_path / "state") == first
    assert installation_id(tmp_path / "other") != first
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [INSTALLATION_FILE]


def test_processes_starting_together_agree_on_one_id(tmp_path: Path) -> None:
    with ProcessPoolExecutor(8, mp_context=get_context("fork")) as pool:
        ids = set(pool.map(installation_id, [tmp_path] * 32))
    assert len(ids) == 1
    assert (tmp_path / INSTALLATION_FILE).read_text().strip() in ids


@pytest.mark.parametrize("content", [b"", b"not-an-id\n", b"\xff" * 32])
def test_damaged_id_is_an_error_not_a_new_id(tmp_path: Path, content: bytes) -> None:
    (tmp_path / INSTALLATION_FILE).write_bytes(content)
    with pytest.raises(VirtsyncError, match="installation"):
        installation_id(tmp_path)
    assert (tmp_path / INSTALLATION_FILE).read_bytes() == content


def test_environment_names_the_id_for_throw_away_state(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INSTALLATION_ENV, "0123456789abcdef0123456789abcdef")
    assert installation_id(tmp_path) == "0123456789abcdef0123456789abcdef"
    assert not (tmp_path / INSTALLATION_FILE).exists()
    monkeypatch.setenv(INSTALLATION_ENV, "laptop")
    with pytest.raises(VirtsyncError, match=INSTALLATION_ENV):
        installation_id(tmp_path)
