"""Count the loader's parses in a test (issue 9, item 4: each file parsed once per run).

The loader's one parse function is wrapped wherever a module bound it, so every parse is
seen whichever module makes it. Keys: (display path, digest of the bytes parsed)."""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
import sys
from collections import Counter
from typing import Any

import pytest

import reconciler
from reconciler.tree import loader

Parses = Counter[tuple[str, str]]


def count_parses(monkeypatch: pytest.MonkeyPatch) -> Parses:
    counts: Parses = Counter()
    original = loader.load_bytes

    def counted(content: bytes, display: str, *args: Any, **kwargs: Any) -> loader.LoadedFile:
        counts[(display, hashlib.sha256(content).hexdigest()[:12])] += 1
        return original(content, display, *args, **kwargs)

    for info in pkgutil.walk_packages(reconciler.__path__, "reconciler."):
        if not info.name.endswith("__main__"):  # the CLI imports its commands lazily
            importlib.import_module(info.name)
    for name, module in list(sys.modules.items()):
        if name.startswith("reconciler") and getattr(module, "load_bytes", None) is original:
            monkeypatch.setattr(module, "load_bytes", counted)
    return counts


def parsed_more_than_once(counts: Parses) -> dict[tuple[str, str], int]:
    return {k: n for k, n in counts.items() if n > 1}
