"""The cyclic garbage collector kept out of a run's bulk phase.

A host-mode plan, apply or watch start-up at 10,000 VMs builds millions of objects that
live until the run (or the cycle) ends: the tree's manifests, every domain's parsed
definition, the observed bodies, the plan. Each young collection scans the ones made
since the last: ~15% of a whole run's CPU for nothing, since garbage cycles are rare
there (a 10k plan left 5 unreachable objects). Reference counting still frees
everything else as before; the collector runs again afterwards, so a cycle made in the
phase is collected then, not leaked.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """The block with the collector off; its earlier state after (off stays off)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
