"""Waiting in the main thread for SIGTERM/SIGINT, in a process that also runs threads.

Python runs a signal's handler only in the main thread, when that thread executes
bytecode. The kernel may deliver a process-directed signal to any thread that does not
block it (libvirt's event loop, the lifecycle agent, watchdog's observer); the main
thread, blocked in a wait without a timeout, then never wakes to run the handler — seen
as `virtsync agent` ignoring SIGTERM. So main-thread waits are bounded by WAKE_SECONDS.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

# Longest delay between a signal's arrival and its handler running.
WAKE_SECONDS = 0.25
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """SIGTERM/SIGINT caught from `with` on, waited for with `wait`; the previous handlers
    come back on leaving. Enter it before starting what the signal must stop: a signal
    that arrives while those start (the process already says it runs) is then kept for
    `wait`, not fatal (issue 13's load showed that window)."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._received: list[signal.Signals] = []
        self._previous: dict[signal.Signals, object] = {}

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self._received.append(signal.Signals(signum))
        self._done.set()

    def __enter__(self) -> StopSignals:
        self._previous = {s: signal.signal(s, self._stop) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *_exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)  # type: ignore[arg-type]

    def wait(self) -> signal.Signals:
        """Block until a stop signal arrived (whichever thread the kernel picked)."""
        while not self._done.wait(WAKE_SECONDS):
            pass
        return self._received[0]


def wait_for_stop_signal() -> signal.Signals:
    """Block until SIGTERM or SIGINT arrives (whichever thread the kernel picks) and
    return it; the previous handlers are restored."""
    with StopSignals() as stop:
        return stop.wait()
