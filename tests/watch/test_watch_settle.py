"""Watch acts on a saved file as soon as it is whole (issue 13): closed after writing or
renamed into place, then a short coalescing window; a file still being written is never
read half-written, and an editor's burst of writes makes one cycle."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from watch_helpers import Rig, make_rig, vm_body, wait_for

from reconciler.watch.watcher import Watcher, WatchOptions, gather


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    r = make_rig(tmp_path, vms=2)
    yield r
    r.cleanup()


def _running(rig: Rig, **options: float) -> tuple[Watcher, threading.Thread]:
    w = rig.make_watcher(interval=3600, **options)
    thread = threading.Thread(target=w.run)
    thread.start()
    assert wait_for(lambda: len(rig.domains()) == 2)
    time.sleep(0.2)  # start-up's outcomes are in
    return w, thread


def _stop(w: Watcher, thread: threading.Thread) -> None:
    w.request_stop("test")
    thread.join(timeout=10)
    assert not thread.is_alive()


def _configured(rig: Rig, name: str, since: float) -> list[float]:
    return [t for t, o in rig.outcomes
            if t >= since and o.key.name == name and o.word == "configured"]


def _labels_last(rig: Rig, name: str, labels: dict[str, str]) -> str:
    """The VM's YAML with metadata (and so the labels) last: any prefix that ends after
    a label line is a whole, valid VM of its own."""
    body = vm_body(name, rig.ns)
    meta = body.pop("metadata")
    body["metadata"] = {**meta, "labels": labels}
    return yaml.safe_dump(body, sort_keys=False)


def test_a_file_written_in_two_steps_is_never_applied_half_written(rig: Rig) -> None:
    w, thread = _running(rig, max_delay=5.0)
    try:
        text = _labels_last(rig, "vm1", {"stage": "half"})
        since = time.monotonic()
        with open(rig.tree / "vm1.yaml", "w") as fh:  # truncates
            fh.write(text)
            fh.flush()
            # The half is a valid VM and stays stable on disk well past the window.
            time.sleep(0.4)
            fh.write("    final: 'yes'\n")
        assert wait_for(lambda: "final" in rig.domains()[f"{rig.ns}_vm1"])
        time.sleep(0.3)
        assert len(_configured(rig, "vm1", since)) == 1  # the whole file only
    finally:
        _stop(w, thread)


@pytest.mark.parametrize("how", ["rename", "write"])
def test_a_whole_file_is_applied_at_once(rig: Rig, how: str) -> None:
    # max_delay is long: only an event that says "whole" makes this fast.
    w, thread = _running(rig, max_delay=5.0)
    try:
        target = rig.tree / "vm0.yaml"
        text = _labels_last(rig, "vm0", {"saved": how})
        if how == "rename":
            tmp = rig.tree / "vm0.yaml.tmp~"
            tmp.write_text(text)
            saved = time.monotonic()
            os.replace(tmp, target)
        else:
            target.write_text(text)
            saved = time.monotonic()
        assert wait_for(lambda: bool(_configured(rig, "vm0", saved)), timeout=10)
        assert _configured(rig, "vm0", saved)[0] - saved < 1.5
    finally:
        _stop(w, thread)


def test_a_burst_of_writes_to_one_file_makes_one_cycle(rig: Rig) -> None:
    # Each write here closes the file, so each version is whole: what coalesces them is
    # the window. Wider than the 10 ms default so a busy 2-core CI machine that stalls
    # the writer mid-burst still sees one burst (the rule, not the default, is tested).
    w, thread = _running(rig, debounce=0.25)
    try:
        before = len(rig.events("cycle.done"))
        texts = [_labels_last(rig, "vm1", {"n": str(i)}) for i in range(20)]
        since = time.monotonic()
        for text in texts:  # an editor's save: several writes in a row
            (rig.tree / "vm1.yaml").write_text(text)
        assert wait_for(lambda: "19" in rig.domains()[f"{rig.ns}_vm1"])
        time.sleep(0.3)
        assert len(_configured(rig, "vm1", since)) == 1
        assert len(rig.events("cycle.done")) == before + 1
    finally:
        _stop(w, thread)


def test_gather_holds_a_written_file_until_it_is_closed() -> None:
    clock = time.monotonic
    opts = WatchOptions(path=".", debounce=0.01, max_delay=0.5)
    events: queue.Queue[tuple[str, bool]] = queue.Queue()

    def close_later() -> None:
        time.sleep(0.2)
        events.put(("b.yaml", True))

    threading.Thread(target=close_later).start()
    events.put(("a.yaml", True))
    start = clock()
    assert gather(events, ("b.yaml", False), opts, clock) == {"a.yaml", "b.yaml"}
    assert 0.15 < clock() - start < 0.45  # waited for the close, not for max_delay
    # Never closed (a writer holding it open): read after max_delay at the latest.
    start = clock()
    assert gather(events, ("c.yaml", False), opts, clock) == {"c.yaml"}
    assert 0.45 < clock() - start < 1.0
    # Whole from the start: only the coalescing window.
    start = clock()
    assert gather(events, ("d.yaml", True), opts, clock) == {"d.yaml"}
    assert clock() - start < 0.1
