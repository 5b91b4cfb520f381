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


# A signal sent while what it must stop is still starting (after the `with`, before the
# wait): `virtsync agent` said it ran, and a SIGTERM then ended it by the default action.
_EARLY = textwrap.dedent("""
    import os, signal
    from reconciler.core.signals import StopSignals

    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)  # "starting the agents"
        print(stop.wait().name, flush=True)
    print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
""")


def test_a_stop_signal_before_the_wait_is_kept_for_it() -> None:
    done = subprocess.run([sys.executable, "-c", _EARLY], capture_output=True, text=True,
                          timeout=20, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["SIGTERM", "True"]  # and the old handler is back
