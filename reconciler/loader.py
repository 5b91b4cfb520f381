"""Load VM specs from a checkout: find YAML files safely, parse them, make Manifests.

`find_yaml_files` reads only regular *.yaml/*.yml files whose real path stays inside
the root the operator named (a symlink that leaves it is an error naming the link).
`load_bytes` is pure: bytes in, Manifests and located Findings out.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.model import (
    CLUSTER_SCOPED_KINDS,
    DEFAULT_NAMESPACE,
    JSON,
    Finding,
    Manifest,
    SourceRef,
    VirtsyncError,
    format_path,
)
from reconciler.positions import doc_start, locate
from reconciler.yamlsafe import YamlProblem, parse_documents

MAX_FILE_BYTES = 2 * 1024 * 1024
YAML_SUFFIXES = (".yaml", ".yml")
# Folders never searched for specs (VCS metadata, virtualenvs, caches).
SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__"})
# A file in the folder you name, listing what in it is not a spec (CI workflows,
# kustomizations...): one glob per line, '#' comments, a trailing '/' for folders.
IGNORE_FILE = ".virtsyncignore"


@dataclass(frozen=True)
class IgnoreRules:
    patterns: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> IgnoreRules:
        lines = (line.strip() for line in text.splitlines())
        return cls(tuple(line for line in lines if line and not line.startswith("#")))

    @classmethod
    def read(cls, folder: Path) -> IgnoreRules:
        try:
            return cls.parse((folder / IGNORE_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            return cls()

    def ignores(self, rel: str, is_dir: bool) -> bool:
        """`rel` is '/'-separated and relative to the folder holding the ignore file."""
        name = rel.rsplit("/", 1)[-1]
        for pattern in self.patterns:
            if pattern.endswith("/"):
                if not is_dir:
                    continue
                pattern = pattern[:-1]
            pattern = pattern.lstrip("/")
            if fnmatch.fnmatchcase(rel, pattern) or ("/" not in pattern
                                                     and fnmatch.fnmatchcase(name, pattern)):
                return True
        return False


@dataclass(frozen=True)
class LoadedFile:
    """One file's parse result. `findings` are YAML/structure problems of this file."""

    path: str
    sha256: str
    manifests: tuple[Manifest, ...]
    findings: tuple[Finding, ...]
    documents: int = 0


@dataclass(frozen=True)
class SourceFile:
    """A file to load: the path shown to users and the absolute path to read."""

    display: str
    absolute: Path
    via_link: bool = False


@dataclass(frozen=True)
class LoadResult:
    files: tuple[LoadedFile, ...]
    findings: tuple[Finding, ...]

    @property
    def manifests(self) -> tuple[Manifest, ...]:
        return tuple(m for f in self.files for m in f.manifests)


def display_path(path: Path) -> str:
    """Path relative to the working directory when below it, else as given."""
    text = os.path.normpath(str(path))
    if not os.path.isabs(text):
        return text
    cwd = os.getcwd()
    if text == cwd:
        return "."
    if text.startswith(cwd.rstrip("/") + "/"):
        return text[len(cwd.rstrip("/")) + 1:]
    return text


def _finding(file: str, line: int, col: int, path: str, message: str, rule: str,
             severity: str = "error") -> Finding:
    return Finding(file, line, col, path, message, rule, severity)


def find_yaml_files(paths: Sequence[str]) -> tuple[list[SourceFile], list[Finding]]:
    """Expand files and directories into the YAML files to read, sorted, de-duplicated.

    A path that does not exist is a VirtsyncError (never "nothing to do"). A symlink whose
    target leaves the root it was found under is reported, never followed.
    """
    files: dict[Path, SourceFile] = {}
    findings: list[Finding] = []
    for given in paths:
        p = Path(given)
        if not p.exists() and not p.is_symlink():
            raise VirtsyncError(f"{given}: no such file or directory")
        if p.is_symlink() and not p.exists():
            raise VirtsyncError(f"{given}: broken symbolic link")
        root = p.resolve() if p.is_dir() else p.resolve().parent
        if p.is_file():
            files.setdefault(p.resolve(), SourceFile(display_path(p), p.resolve()))
            continue
        for src, problem in _walk(p, root, IgnoreRules.read(p)):
            if problem is not None:
                findings.append(problem)
            elif src is not None:
                # The same file reached twice (a link inside the root): read it once,
                # under its own name rather than the link's.
                if src.absolute not in files or files[src.absolute].via_link:
                    files[src.absolute] = src
    return sorted(files.values(), key=lambda s: s.display), findings


def _walk(top: Path, root: Path,
          ignore: IgnoreRules) -> Iterable[tuple[SourceFile | None, Finding | None]]:
    # Plain string joins: `top` is resolved once and symlinked folders are never entered,
    # so every regular file's real path is its folder's real path plus its name.
    stack = [(str(top.resolve()), display_path(top), "")]
    while stack:
        real_dir, shown_dir, rel_dir = stack.pop()
        try:
            entries = sorted(os.scandir(real_dir), key=lambda e: e.name)
        except OSError as exc:
            raise VirtsyncError(f"{shown_dir}: cannot read directory: {exc.strerror}") from None
        for entry in entries:
            shown = os.path.join(shown_dir, entry.name)
            rel = f"{rel_dir}{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in SKIP_DIRS and not ignore.ignores(rel, True):
                    stack.append((entry.path, shown, rel + "/"))
                continue
            if ignore.patterns and ignore.ignores(rel, False):
                continue
            if not entry.name.endswith(YAML_SUFFIXES) or entry.name.startswith(".#"):
                continue  # not YAML, or an editor's lock file (Emacs: a dangling link)
            if entry.is_symlink():
                real = Path(entry.path).resolve()
                if not real.is_relative_to(root):
                    yield None, _finding(
                        shown, 1, 1, ".",
                        f"symbolic link points outside {display_path(root)} "
                        f"(to {real}); refusing to read it", "path.symlink-escape")
                    continue
                if not real.is_file():
                    yield None, _finding(shown, 1, 1, ".",
                                         "symbolic link does not point to a regular file",
                                         "path.not-regular")
                    continue
                yield SourceFile(shown, real, via_link=True), None
            elif entry.is_file(follow_symlinks=False):
                yield SourceFile(shown, Path(entry.path)), None
            else:
                yield None, _finding(shown, 1, 1, ".", "not a regular file", "path.not-regular")


def read_source(src: SourceFile) -> bytes:
    """Read a file, refusing ones over MAX_FILE_BYTES before reading them whole."""
    try:
        with open(src.absolute, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise VirtsyncError(f"{src.display}: cannot read: {exc.strerror}") from None
    return data


def load_bytes(content: bytes, display: str) -> LoadedFile:
    """Parse one file's bytes into Manifests plus located Findings. Pure."""
    digest = hashlib.sha256(content).hexdigest()

    def fail(line: int, col: int, message: str, rule: str, path: str = ".") -> LoadedFile:
        return LoadedFile(display, digest, (), (_finding(display, line, col, path, message,
                                                         rule),))

    if len(content) > MAX_FILE_BYTES:
        return fail(1, 1, f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; "
                    "refusing to parse it", "yaml.too-large")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content.count(b"\n", 0, exc.start) + 1
        col = exc.start - (content.rfind(b"\n", 0, exc.start) + 1) + 1
        return fail(line, col, f"not valid UTF-8 (byte 0x{content[exc.start]:02x})",
                    "yaml.encoding")
    if text.startswith("\ufeff"):
        text = text[1:]

    docs: list[JSON] = []
    try:
        docs.extend(parse_documents(text))
    except YamlProblem as problem:
        line, col = problem.line, problem.column
        if problem.rule in ("yaml.alias-bomb", "yaml.too-deep") and (line, col) == (1, 1):
            line, col = doc_start(text, problem.doc)
        message = problem.message
        if problem.rule == "yaml.syntax" and _char_at(text, line, col) == "\t":
            message = "tab character where YAML allows only spaces (indent with spaces)"
        return fail(line, col, message, problem.rule)

    manifests: list[Manifest] = []
    findings: list[Finding] = []
    non_empty = 0
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        non_empty += 1
        made = _manifest(doc, display, index, text)
        if isinstance(made, Manifest):
            manifests.append(made)
        else:
            findings.append(made)
    if non_empty == 0:
        findings.append(_finding(display, 1, 1, ".",
                                 "file has no YAML documents (empty or only comments)",
                                 "yaml.empty", "warning"))
    return LoadedFile(display, digest, tuple(manifests), tuple(findings), non_empty)


def _char_at(text: str, line: int, col: int) -> str:
    lines = text.splitlines()
    if 0 < line <= len(lines) and 0 < col <= len(lines[line - 1]):
        return lines[line - 1][col - 1]
    return ""


def _manifest(doc: JSON, display: str, index: int, text: str) -> Manifest | Finding:
    def bad(path: tuple[str | int, ...], message: str, rule: str) -> Finding:
        line, col = locate(text, index, path)
        return _finding(display, line, col, format_path(path), message, rule)

    if not isinstance(doc, dict):
        return bad((), f"document must be a mapping (an object), got {_kind_of(doc)}",
                   "object.not-a-mapping")
    for field in ("apiVersion", "kind"):
        value = doc.get(field)
        if value is None:
            return bad((), f'missing required field "{field}"', "object.missing-field")
        if not isinstance(value, str) or not value:
            return bad((field,), f"{field} must be a non-empty string, got {_kind_of(value)}",
                       "object.bad-field")
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        path: tuple[str | int, ...] = ("metadata",) if "metadata" in doc else ()
        return bad(path, 'missing required field "metadata.name"', "object.missing-field")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        where: tuple[str | int, ...] = ("metadata", "name") if "name" in meta else ("metadata",)
        return bad(where, 'metadata.name must be a non-empty string', "object.missing-field")
    kind = doc["kind"]
    namespace = meta.get("namespace")
    if kind in CLUSTER_SCOPED_KINDS:
        namespace = ""
    elif namespace is None:
        namespace = DEFAULT_NAMESPACE
    elif not isinstance(namespace, str) or not namespace:
        return bad(("metadata", "namespace"), "metadata.namespace must be a non-empty string",
                   "object.bad-field")
    return Manifest(doc["apiVersion"], kind, namespace, name, doc, SourceRef(display, index))


def _kind_of(value: JSON) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def load_paths(paths: Sequence[str]) -> LoadResult:
    """Find and load every YAML file under `paths` (single process; see validate for more)."""
    sources, findings = find_yaml_files(paths)
    files = tuple(load_bytes(read_source(s), s.display) for s in sources)
    return LoadResult(files, tuple(findings))
