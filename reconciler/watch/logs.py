"""Structured logs for long-running commands: one JSON object per line on stderr.

Every line has `ts` (RFC 3339, UTC, milliseconds), `level`, `event` (a short fixed word
such as `cycle.done`), `key` (the object concerned, or null) and `details` (a flat object).
Callers pass only facts virtsync computed (counts, words, paths, finding messages, which
are already secret-free); as a second line of defence any detail whose name looks
sensitive is replaced by "(sensitive)" (safety rule 10).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from reconciler.core.model import ObjectKey
from reconciler.core.sensitive import MASK, is_sensitive_key

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}

Detail = str | int | float | bool | None | list[str] | list[int]


def _ts(now: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    return f"{whole}.{int(now % 1 * 1000):03d}Z"


class JsonLogger:
    """Thread-safe JSON-lines logger (watchdog and libvirt threads log too)."""

    def __init__(self, stream: TextIO | None = None, *, level: str = "info",
                 clock: Callable[[], float] = time.time) -> None:
        self.stream = stream
        self.threshold = LEVELS[level]
        self.clock = clock
        # Re-entrant: a signal handler (SIGTERM → request_stop) logs from the main thread,
        # possibly while that thread is inside `log`; a plain lock deadlocked the stop.
        self._lock = threading.RLock()

    def log(self, level: str, event: str, key: ObjectKey | str | None = None,
            **details: Detail) -> None:
        if LEVELS[level] < self.threshold:
            return
        safe = {k: (MASK if is_sensitive_key(k) else v) for k, v in details.items()}
        record = {"ts": _ts(self.clock()), "level": level, "event": event,
                  "key": str(key) if key is not None else None, "details": safe}
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        stream = self.stream if self.stream is not None else sys.stderr
        with self._lock:
            stream.write(line)
            stream.flush()

    def debug(self, event: str, key: ObjectKey | str | None = None, **details: Detail) -> None:
        self.log("debug", event, key, **details)

    def info(self, event: str, key: ObjectKey | str | None = None, **details: Detail) -> None:
        self.log("info", event, key, **details)

    def warning(self, event: str, key: ObjectKey | str | None = None,
                **details: Detail) -> None:
        self.log("warning", event, key, **details)

    def error(self, event: str, key: ObjectKey | str | None = None, **details: Detail) -> None:
        self.log("error", event, key, **details)
