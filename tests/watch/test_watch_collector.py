"""A watch's start-up (read, observe, plan, apply) runs with the cyclic collector paused
(reconciler.core.collector, issue 13); the collector is on again after it, and an
incremental cycle runs with it on as before."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from watch_helpers import Rig, make_rig

from reconciler.backends.libvirt import LibvirtBackend


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    was = gc.isenabled()
    gc.enable()
    r = make_rig(tmp_path, vms=2)
    yield r
    r.cleanup()
    if not was:
        gc.disable()


def test_start_up_observes_with_the_collector_paused_and_turns_it_back_on(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    observe = LibvirtBackend.observe

    def spy(self: LibvirtBackend) -> Any:
        seen.append(gc.isenabled())
        return observe(self)

    monkeypatch.setattr(LibvirtBackend, "observe", spy)
    w = rig.make_watcher()
    assert w.startup().result == "ok"
    assert seen == [False]
    assert gc.isenabled()
    gc.unfreeze()  # the start-up's freeze (watcher): this test process's objects again
    assert w.resync().result == "ok"
    assert seen == [False, True]  # a resync is not the start-up: as before
