"""Which journal files are known to hold no unfinished intent (issue 13).

Every apply and watch start reads the journals of earlier runs for intents without an
outcome (reconciler.execute.journal.unfinished). A finished run's file never changes
again (only `resolve` appends, and only to a file with an unfinished intent), yet a
10,000-VM set-up leaves a 20,000-line file whose parse cost ~0.27 s on every later apply.
So the files found closed are remembered by their stat: size, mtime, ctime and inode. A
file that changed in any way (appended, rewritten, replaced) stats differently and is
read again; a missing or damaged memo only means every file is read. A file changed in
the last RACY_WINDOW_NS is not remembered yet: a write in the same clock tick as the stat
could leave its times as they were (the validation cache's rule). The memo lives in the
state directory's cache folder: derived data, not state.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

from reconciler.core.fsutil import write_atomic
from reconciler.tree.cache import RACY_WINDOW_NS

FORMAT = 1
Stamp = tuple[int, int, int, int]


def memo_path(state: Path) -> Path:
    return state / "cache" / "journal-closed.json"


def stamp(path: Path) -> Stamp | None:
    """What identifies this version of the file; None when it cannot be stat'ed."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def settled(stamp: Stamp) -> bool:
    """Last changed (content or metadata) longer than the racy window ago."""
    return max(stamp[1], stamp[2]) < time.time_ns() - RACY_WINDOW_NS


def load(state: Path) -> dict[str, Stamp]:
    """File name → stamp of the closed files the last reader saw (empty when none)."""
    try:
        doc = json.loads(memo_path(state).read_bytes())
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            return {}
        return {str(name): (int(a), int(b), int(c), int(d))
                for name, (a, b, c, d) in doc["closed"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def save(state: Path, closed: Mapping[str, Stamp], before: Mapping[str, Stamp]) -> None:
    """Only when it changed. Not fsync'd: losing it costs one full read of the journals;
    a state directory that cannot be written leaves the journals read in full."""
    if dict(closed) == dict(before):
        return
    doc = {"format": FORMAT, "closed": {n: list(s) for n, s in sorted(closed.items())}}
    try:
        write_atomic(memo_path(state), json.dumps(doc, separators=(",", ":")).encode(),
                     sync=False)
    except OSError:
        pass

