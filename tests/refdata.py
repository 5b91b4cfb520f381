"""Where the upstream reference data (KubeVirt/CDI OpenAPI, examples) is: the `shared/`
folder beside this checkout (as CI lays it out), else the workplace's /work/shared.
VIRTSYNC_REFERENCE_DIR overrides both."""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]

# What the reference tests read, folder → what it holds (the folder's README says more).
PARTS = {
    "kubevirt": "KubeVirt OpenAPI (swagger.json) and examples",
    "containerized-data-importer": "CDI OpenAPI and DataVolume examples",
    "common-instancetypes": "common instancetypes and preferences",
    "argocd-kubevirt-health": "Argo CD KubeVirt health test data",
}


def reference_dir() -> Path:
    configured = os.environ.get("VIRTSYNC_REFERENCE_DIR")
    if configured:
        return Path(configured)
    for candidate in (_REPO.parent / "shared" / "reference", Path("/work/shared/reference")):
        if (candidate / "kubevirt").is_dir():
            return candidate
    return _REPO.parent / "shared" / "reference"


REFERENCE = reference_dir()


def missing_parts(root: Path = REFERENCE) -> list[str]:
    """The reference folders that are not there, each with what it holds."""
    return [f"{name}/ ({what})" for name, what in PARTS.items() if not (root / name).is_dir()]
