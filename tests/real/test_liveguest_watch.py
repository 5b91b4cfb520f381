"""The console-tick watcher the live-migration tests rely on, on a plain file written the
way QEMU writes the guest's console: one line per poll, sometimes split mid-line."""

from __future__ import annotations

import time
from pathlib import Path

from . import liveguest


def _write(path: Path, data: bytes) -> None:
    with path.open("ab") as fh:
        fh.write(data)


def test_tick_watch_counts_a_tick_read_alone_and_ignores_half_lines(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    _write(log, b"VS-READY\r\nVS-TICK 1 boot=b1 up=3.10\r\n")
    with liveguest.TickWatch(log) as watch:
        deadline = time.monotonic() + 5
        while 1 not in watch.arrived and time.monotonic() < deadline:
            time.sleep(0.01)
        for n in (2, 3):  # one tick per poll, as a guest printing every 0.5 s
            time.sleep(0.05)
            _write(log, f"VS-TICK {n} boot=b1 up=3.{n}0\r\n".encode())
        watch.wait_fresh_tick(timeout=5)
        _write(log, b"VS-TICK 4 boot=b1 up=")  # cut mid-line: not a tick yet
        time.sleep(0.1)
        assert 4 not in watch.arrived
        _write(log, b"3.40\r\n")
        deadline = time.monotonic() + 5
        while 4 not in watch.arrived and time.monotonic() < deadline:
            time.sleep(0.01)
    assert sorted(watch.arrived) == [1, 2, 3, 4]
    assert watch.arrived[1] <= watch.arrived[2] <= watch.arrived[3] <= watch.arrived[4]
