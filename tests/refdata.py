"""Where the upstream reference data (KubeVirt/CDI OpenAPI, examples) is: the `shared/`
folder beside this checkout (as CI lays it out), else the workplace's /work/shared."""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]


def reference_dir() -> Path:
    configured = os.environ.get("VIRTSYNC_REFERENCE_DIR")
    if configured:
        return Path(configured)
    for candidate in (_REPO.parent / "shared" / "reference", Path("/work/shared/reference")):
        if (candidate / "kubevirt").is_dir():
            return candidate
    return _REPO.parent / "shared" / "reference"


REFERENCE = reference_dir()
# Locally a missing copy skips those tests; in CI it must be there (it is laid beside
# the clone), so a broken layout fails loudly instead of skipping the reference checks.
if os.environ.get("CI") == "true" and not (REFERENCE / "kubevirt").is_dir():
    raise RuntimeError(f"CI: upstream reference data not found at {REFERENCE}")
