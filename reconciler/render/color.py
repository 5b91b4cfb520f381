"""Whether the terminal rendering is coloured: apart from the renderer, so that a plan
printed as stored (reconciler/planning/settledplan.py) can decide without importing it."""

from __future__ import annotations

import os


def want_color(choice: str, stream_is_tty: bool) -> bool:
    """--color auto|always|never; auto honours NO_COLOR and whether stdout is a terminal."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    return stream_is_tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
