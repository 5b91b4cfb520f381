"""Which tools the real-QEMU lane needs (tests/real and the other `real`-marked tests).

A missing tool skips the real tests with a reason starting "real lane:"; under CI such a
skip fails the run (tests/ci_strict.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REAL_TOOLS = ("libvirtd", "virtlogd", "qemu-system-x86_64", "qemu-img")
REAL_SKIP_PREFIX = "real lane:"


def missing_real_tools() -> list[str]:
    return [t for t in REAL_TOOLS
            if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]


def require_real_tools() -> None:
    missing = missing_real_tools()
    if missing:
        pytest.skip(f"{REAL_SKIP_PREFIX} {', '.join(missing)} not installed "
                    "(run scripts/setup.sh)")
