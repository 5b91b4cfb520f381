"""tools/build_backend/virtsync_build.py: the wheel's import rewriting (fast; the built
wheel itself is tests/packaging/test_wheel.py), and the module names kept in strings are
relative, so the rewriting need not touch strings."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from reconciler.backends import registry
from reconciler.cli import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[2]


def _backend() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "virtsync_build", ROOT / "tools/build_backend/virtsync_build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("virtsync_build", module)
    spec.loader.exec_module(module)
    return module


SOURCE = '''\
"""Docs: from reconciler.core import model stays as written here."""
from __future__ import annotations

import importlib
from node.identity.metadata import Scope
from reconciler.core.model import (
    JSON,
    Manifest,
)
import reconciler.core.model as model_module
from nodejs import thing
from reconcilerx.y import z

if TYPE_CHECKING:
    from node.cluster import host

LOCK = "reconciler.lock"


def later() -> None:
    from reconciler.render.text import render_text
'''

EXPECTED = SOURCE.replace("from node.identity", "from virtsync.node.identity").replace(
    "from reconciler.core.model import (", "from virtsync.reconciler.core.model import (").replace(
    "import reconciler.core.model as", "import virtsync.reconciler.core.model as").replace(
    "    from node.cluster", "    from virtsync.node.cluster").replace(
    "    from reconciler.render", "    from virtsync.reconciler.render")


def test_rewrites_import_statements_only() -> None:
    out = _backend().rewrite_imports(SOURCE)
    assert out == EXPECTED
    # strings, docstrings and look-alike packages are left alone
    assert '"reconciler.lock"' in out and "from nodejs import" in out
    assert "from reconcilerx.y import" in out and '"""Docs: from reconciler.core' in out


def test_refuses_a_plain_import_whose_binding_would_change() -> None:
    with pytest.raises(ValueError, match=r"line 1: `import node\.x` without `as`"):
        _backend().rewrite_imports("import node.x\n")


def test_module_names_in_strings_are_relative() -> None:
    """An absolute 'reconciler.…' string would break only in the wheel (not rewritten)."""
    assert all(module.startswith(".") for module in SUBCOMMANDS.values())
    for name in ("libvirt", "kubevirt"):
        entry = registry._ENTRIES[name]
        assert entry.profile.startswith(".")
        assert entry.opener is None or entry.opener.startswith(".")


def test_no_string_names_an_absolute_module() -> None:
    """Any string that spells an importable `reconciler.…`/`node.…` module breaks only in
    the wheel, where the packages live under `virtsync.` and strings are not rewritten
    (the cache digest once looked its modules up by such names)."""
    import ast
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in sorted([*root.glob("reconciler/**/*.py"), *root.glob("node/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and node.value.split(".")[0] in ("reconciler", "node") \
                    and " " not in node.value and "." in node.value:
                try:
                    found = importlib.util.find_spec(node.value) is not None
                except (ImportError, ValueError):
                    found = False
                if found:
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}: {node.value}")
    assert offenders == []
