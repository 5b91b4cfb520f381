"""File events for `virtsync watch`: watchdog on the folders the tree names.

The tree says where to look and which paths matter (`TreeSource.watch_points`); this
module only turns watchdog's events into paths for the watcher's queue.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from reconciler.tree.source import WatchPoint

_IGNORED_EVENTS = frozenset({"opened", "closed_no_write"})
# After these the file is complete: closed after writing, renamed into place, removed.
# "created" and "modified" may come from a writer that is still writing.
_WHOLE_EVENTS = frozenset({"closed", "moved", "deleted"})


class EventHandler(FileSystemEventHandler):
    """Hands each path an event names to `notify`, when `relevant` says it matters."""

    def __init__(self, notify: Callable[[str, bool], None],
                 relevant: Callable[[str], bool]) -> None:
        super().__init__()
        self.notify = notify
        self.relevant = relevant

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.event_type in _IGNORED_EVENTS:
            return
        if event.is_directory and event.event_type == "modified":
            # A folder is "modified" whenever a file in it is written; the file's own event
            # names what changed. Passing the folder on would force a walk of the tree.
            return
        # A folder's own event is whole: its files' events tell whether they are.
        whole = event.is_directory or event.event_type in _WHOLE_EVENTS
        for attr in ("src_path", "dest_path"):
            path = getattr(event, attr, "")
            if path and self.relevant(os.fsdecode(path)):
                self.notify(os.fsdecode(path), whole)


def start_observer(points: Sequence[WatchPoint],
                   notify: Callable[[str, bool], None]) -> Any:
    """A running watchdog observer (a daemon thread) over `points`; `stop` and `join` it."""
    observer = Observer()
    for point in points:
        observer.schedule(EventHandler(notify, point.relevant), str(point.folder),
                          recursive=point.recursive)
    observer.daemon = True
    observer.start()
    return observer
