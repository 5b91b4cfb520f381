"""virtsync's build backend: setuptools, plus a `build_py` that puts the wheel's modules
under one namespace.

The source tree keeps `reconciler/` and `node/` as top-level packages (tests, mypy and
import-linter use those names). Installed as top-level modules they would collide with
any other distribution's `node` or `reconciler`, so a (non-editable) wheel holds

    virtsync/__init__.py, virtsync/__main__.py      (from the source tree's virtsync/)
    virtsync/reconciler/...  virtsync/node/...      (absolute imports rewritten)
    virtsync/schemas/*.json                         (from schemas/)

`reconciler/check/schema.py` finds its schemas two folders up in both layouts. Module
names in strings (CLI subcommands, backend registry) are relative to their package, so
only `import` statements need rewriting. Editable installs (`pip install -e .`) are left
as setuptools makes them: the source tree's top-level packages.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

from setuptools.build_meta import *  # noqa: F403  (the PEP 517/660 hooks)
from setuptools.command.build_py import build_py

NAMESPACE = "virtsync"
MOVED = ("reconciler", "node")  # top-level in the source tree, under NAMESPACE in the wheel
SCHEMAS = "schemas"
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def rewrite_imports(source: str) -> str:
    """`from reconciler.x import y` / `import node.x as y` → under NAMESPACE. Only the
    import statements found by parsing are touched (never strings or docstrings)."""
    lines = source.splitlines(keepends=True)
    for stmt in ast.walk(ast.parse(source)):
        if isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and _moved(stmt.module):
            lines[stmt.lineno - 1] = _prefix(lines[stmt.lineno - 1], "from", stmt.module)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if _moved(alias.name):
                    if alias.asname is None:  # `import node.x` binds `node`: not kept
                        raise ValueError(f"line {stmt.lineno}: `import {alias.name}` without "
                                         "`as`: use `from ... import ...`")
                    lines[stmt.lineno - 1] = _prefix(lines[stmt.lineno - 1], "import",
                                                     alias.name)
    return "".join(lines)


def _moved(module: str | None) -> bool:
    return module is not None and module.split(".", 1)[0] in MOVED


def _prefix(line: str, keyword: str, module: str) -> str:
    pattern = re.compile(rf"\b{keyword}\s+{re.escape(module)}\b")
    new, count = pattern.subn(f"{keyword} {NAMESPACE}.{module}", line, count=1)
    if count != 1:
        raise ValueError(f"cannot rewrite {keyword} {module!r} in {line.strip()!r}")
    return new


def relocate(build_lib: Path, source_root: Path) -> None:
    """Turn a plain build of the source tree's packages into the namespaced layout."""
    target = build_lib / NAMESPACE
    for name in MOVED:
        src, dst = build_lib / name, target / name
        if dst.exists():
            shutil.rmtree(dst)
        if src.exists():
            shutil.move(str(src), str(dst))
    for path in sorted(target.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        try:
            path.write_text(rewrite_imports(text), encoding="utf-8")
        except ValueError as exc:
            raise SystemExit(f"virtsync build: {path.relative_to(build_lib)}: {exc}") from exc
    schemas = target / SCHEMAS
    if schemas.exists():
        shutil.rmtree(schemas)
    schemas.mkdir(parents=True)
    for schema in sorted((source_root / SCHEMAS).glob("*.json")):
        shutil.copy2(schema, schemas / schema.name)


class BuildPy(build_py):  # type: ignore[misc]  # setuptools is untyped
    """setuptools' build_py, then `relocate` (not for editable installs)."""

    def run(self) -> None:
        super().run()
        if not getattr(self, "editable_mode", False):
            relocate(Path(self.build_lib), SOURCE_ROOT)
