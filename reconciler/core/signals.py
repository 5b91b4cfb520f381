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


def wait_for_stop_signal() -> signal.Signals:
    """Block until SIGTERM or SIGINT arrives (whichever thread the kernel picks) and
    return it; the previous handlers are restored."""
    done = threading.Event()
    received: list[signal.Signals] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum))
        done.set()

    previous = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    try:
        while not done.wait(WAKE_SECONDS):
            pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return received[0]
