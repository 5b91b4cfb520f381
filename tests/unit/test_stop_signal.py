"""A stop signal the kernel hands to a thread other than the main one still stops the
process promptly (`virtsync agent` once ignored SIGTERM this way)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# The signal goes to a worker thread, as the kernel may do with a process-directed
# signal: the main thread, blocked in its wait, is not interrupted by it.
_PROGRAM = textwrap.dedent("""
    import signal, sys, threading, time
    from reconciler.core.signals import wait_for_stop_signal

    def send() -> None:
        time.sleep(0.3)
        signal.pthread_kill(threading.get_ident(), signal.{sig})
        time.sleep(30)  # stay alive: only the main thread may end the process

    threading.Thread(target=send, daemon=True).start()
    print(wait_for_stop_signal().name, flush=True)
""")


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_stop_signal_delivered_to_another_thread_ends_the_wait(sig: str) -> None:
    done = subprocess.run([sys.executable, "-c", _PROGRAM.format(sig=sig)],
                          capture_output=True, text=True, timeout=20, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == sig
