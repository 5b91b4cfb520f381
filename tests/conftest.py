"""Test-suite-wide set-up: make tests/ importable (refdata), nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
