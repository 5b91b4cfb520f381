"""The watch logger survives a signal handler that logs while a line is being written
(SIGTERM → `request_stop` logs `watch.stopping` on the main thread, which may be inside
`log` at that moment): `watch` used to hang there instead of stopping."""

from __future__ import annotations

import io
import json
import threading

from reconciler.watch.logs import JsonLogger


class _SignalDuringWrite(io.StringIO):
    """Runs `handler` on the writing thread, in the middle of the first write."""

    def __init__(self) -> None:
        super().__init__()
        self.handler = lambda: None
        self._fired = False

    def write(self, s: str) -> int:
        if not self._fired:
            self._fired = True
            self.handler()
        return super().write(s)


def test_a_signal_handler_logging_mid_line_does_not_deadlock() -> None:
    stream = _SignalDuringWrite()
    log = JsonLogger(stream)
    stream.handler = lambda: log.info("watch.stopping", reason="SIGTERM")
    writer = threading.Thread(target=log.info, args=("cycle.done",), daemon=True)
    writer.start()
    writer.join(timeout=5)
    assert not writer.is_alive(), "the logger deadlocked on its own lock"
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert events == ["watch.stopping", "cycle.done"]  # whole lines, never interleaved
