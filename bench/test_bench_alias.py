"""CPU to refuse a file of 4,200 small alias bombs (bench/aliasgen.py), each under the
per-document node limit. Issue 8 measured 203 s with a per-document budget only; the
per-file budget refuses it after the second document.

    .venv/bin/pytest bench/test_bench_alias.py --benchmark-columns=min,median,mean
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from reconciler.tree.loader import load_bytes
from reconciler.tree.yamlsafe import AliasBudget

sys.path.insert(0, str(Path(__file__).parent))
import aliasgen

BOMBS = aliasgen.bomb_file(4200)


def test_refuse_file_of_small_alias_bombs(benchmark: Any) -> None:
    loaded = benchmark(lambda: load_bytes(BOMBS, "bombs.yaml", AliasBudget.for_run()))
    assert [f.rule for f in loaded.findings] == ["yaml.alias-bomb"]
