"""`python -m virtsync` and the `virtsync` console script: the command line.

The import below names the source tree's top-level package; the wheel's build rewrites
it to `virtsync.reconciler.cli` (tools/build_backend/virtsync_build.py).
"""

import sys

from reconciler.cli import process_main as main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
