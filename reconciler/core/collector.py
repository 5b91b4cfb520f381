"""The cyclic garbage collector kept out of a run's bulk phase.

A host-mode plan or apply at 10,000 VMs builds over a million objects that live until
the run ends: the tree's manifests, every domain's parsed definition, the observed
bodies, the plan. Each young collection scans the ones made since the last: 14
collections, 0.4-0.55 s of CPU per 10k no-op plan or apply (issue 13), for nothing,
since garbage cycles are rare there (a 10k plan left 5 unreachable objects). `watch`
does not pause: its start-up creating 3,000 VMs peaked 16 MiB higher paused, for no
measurable time saved, and a watch's memory is what its users watch. Reference counting still frees everything else as before; the
collector runs again afterwards, so a cycle made in the phase is collected then, not
leaked. Pause around a whole call: on again while the call's frame still holds the big
data, the next young collection would scan all of it at once.
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
