"""Running `virtsync render` the way Argo CD and Flux users do: a subprocess, stdout as
bytes, stderr apart."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TREE = REPO / "tests" / "fixtures" / "render" / "tree"
EXAMPLES = REPO / "examples"


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGOCD_", "VIRTSYNC_"))}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


def render(*args: str, cwd: Path | None = None,
           env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "reconciler", "render", *args],
                          cwd=cwd or REPO, env=clean_env(env), capture_output=True,
                          check=False, timeout=120)
