"""Where virtsync keeps its state: caches, identity, inventory, journal, locks."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """`VIRTSYNC_STATE_DIR`, else /var/lib/virtsync for root, else ~/.local/state/virtsync."""
    configured = os.environ.get("VIRTSYNC_STATE_DIR")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/lib/virtsync")
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "virtsync"
