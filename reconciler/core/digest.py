"""Identities made of hashes: a set of files, and the code (with schemas) a stored
answer depends on."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

# The package's folder: reconciler, or virtsync/reconciler in the wheel. Module names
# below are relative to it ("planning.plan").
PACKAGE = Path(__file__).resolve().parents[1]


def content_hash(items: Iterable[tuple[str, str]]) -> str:
    """sha256 over sorted (path, content digest) pairs: the identity of a set of files."""
    h = hashlib.sha256()
    for path, digest in sorted(items):
        h.update(f"{path}\0{digest}\n".encode())
    return "sha256:" + h.hexdigest()


def package_modules(package: Path = PACKAGE) -> tuple[str, ...]:
    """Every module of the package, as names relative to it, in one total order."""
    names = []
    for folder, dirs, files in os.walk(package):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        prefix = os.path.relpath(folder, package).replace(os.sep, ".")
        for name in files:
            if name.endswith(".py"):
                stem = name[:-3]
                names.append(stem if prefix == "." else f"{prefix}.{stem}")
    return tuple(sorted(names))


@lru_cache(maxsize=8)
def code_digest(seed: str, modules: tuple[str, ...], schema_dir: Path | None = None,
                package: Path = PACKAGE) -> str:
    """sha256 of `seed`, each named module's source (read as a file, not imported: a
    stored answer is checked before the code it stands for is loaded) and, when given,
    every schema: what a cached verdict depends on besides its inputs, so a changed
    module or schema invalidates it (issue 13)."""
    h = hashlib.sha256(seed.encode())
    for name in modules:
        h.update(f"{name}\0".encode())
        h.update(package.joinpath(*name.split(".")).with_suffix(".py").read_bytes())
    if schema_dir is not None:
        for schema in sorted(schema_dir.glob("*.json")):
            h.update(f"{schema.name}\0".encode())
            h.update(schema.read_bytes())
    return h.hexdigest()
