"""Load VM specs from a checkout: find YAML files safely, parse them, make Manifests.

`find_yaml_files` reads only regular *.yaml/*.yml files whose real path stays inside
the root the operator named (a symlink that leaves it is an error naming the link).
`load_bytes` is pure: bytes in, Manifests and located Findings out.
"""

from __future__ import annotations

import dataclasses
import errno
import fnmatch
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from reconciler.core.model import (
    CLUSTER_SCOPED_KINDS,
    DEFAULT_NAMESPACE,
    JSON,
    Finding,
    Manifest,
    SourceRef,
    VirtsyncError,
    format_path,
)

# Re-exported (`as`): the walk's names are looked up here by the other tree readers.
from reconciler.tree.walk import IGNORE_FILE as IGNORE_FILE
from reconciler.tree.walk import SKIP_DIRS as SKIP_DIRS
from reconciler.tree.walk import YAML_SUFFIXES as YAML_SUFFIXES
from reconciler.tree.walk import Entry, Unreadable, walk
from reconciler.tree.walk import display_path as display_path
from reconciler.tree.walk import is_yaml_name as _is_yaml_name
from reconciler.tree.walk import utf8 as _utf8

if TYPE_CHECKING:
    from reconciler.tree.yamlsafe import AliasBudget

# The YAML parsers (yamlsafe: libyaml; positions: ruamel.yaml) are imported where a file
# is parsed: finding files and a warm `validate` never need them (issue 13).

MAX_FILE_BYTES = 2 * 1024 * 1024


class IgnoreRules(NamedTuple):  # a NamedTuple: cheaper to define than a dataclass (tree/cache.py)
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


class LoadedFile(NamedTuple):
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
    absolute: str  # a plain string: pathlib costs more than the walk at 10,000 files
    via_link: bool = False
    # (mtime_ns, size, inode) as the walk saw it, before the file is read; None: stat
    # it when needed (a file named directly, a link).
    stat: tuple[int, int, int] | None = dataclasses.field(default=None, compare=False)


class LoadResult(NamedTuple):
    files: tuple[LoadedFile, ...]
    findings: tuple[Finding, ...]

    @property
    def manifests(self) -> tuple[Manifest, ...]:
        return tuple(m for f in self.files for m in f.manifests)


def _finding(file: str, line: int, col: int, path: str, message: str, rule: str,
             severity: str = "error") -> Finding:
    return Finding(file, line, col, path, message, rule, severity)


def find_yaml_files(paths: Sequence[str]) -> tuple[list[SourceFile], list[Finding]]:
    """Expand files and directories into the YAML files to read, sorted, de-duplicated.

    A path that does not exist is a VirtsyncError (never "nothing to do"). A symlink whose
    target leaves the root it was found under is reported, never followed.
    """
    files: dict[str, SourceFile] = {}
    findings: list[Finding] = []
    for given in paths:
        if not _utf8(given):
            raise VirtsyncError(f"{_printable(given)}: path is not valid UTF-8; rename it")
        p = Path(given)
        if not p.exists() and not p.is_symlink():
            raise VirtsyncError(f"{given}: no such file or directory")
        if p.is_symlink() and not p.exists():
            raise VirtsyncError(f"{given}: broken symbolic link")
        root = p.resolve() if p.is_dir() else p.resolve().parent
        if p.is_file():
            real = str(p.resolve())
            files.setdefault(real, SourceFile(display_path(p), real))
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


def _printable(text: str) -> str:
    """A path for messages: bytes that are not UTF-8 (kept by Python as surrogates) are
    shown as \\xNN escapes instead of breaking every encoder downstream."""
    return os.fsencode(text).decode("utf-8", errors="backslashreplace")


def _link_target(path: str) -> tuple[Path | None, str]:
    """(resolved target, '') or (None, why it cannot be followed): a loop or a dangling
    link (RuntimeError is what Python 3.11's pathlib raises for a loop)."""
    try:
        return Path(path).resolve(strict=True), ""
    except RuntimeError:
        return None, "symbolic link loop"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, "symbolic link loop"
        return None, f"symbolic link cannot be followed ({exc.strerror})"


def _walk(top: Path, root: Path,
          ignore: IgnoreRules) -> Iterable[tuple[SourceFile | None, Finding | None]]:
    try:
        for what, shown, entry in walk(str(top.resolve()), display_path(top),
                                       ignore.ignores if ignore.patterns else None):
            if what is Entry.FILE:
                yield SourceFile(shown, entry.path, stat=_lstat(entry)), None
            elif what is Entry.LINK:
                yield from _link(entry, shown, root)
            elif what is Entry.NOT_UTF8:
                yield None, _finding(_printable(shown), 1, 1, ".",
                                     "name is not valid UTF-8; rename it", "path.not-utf8")
            else:
                yield None, _finding(shown, 1, 1, ".", "not a regular file", "path.not-regular")
    except Unreadable as exc:
        raise VirtsyncError(f"{_printable(exc.shown)}: cannot read directory: "
                            f"{exc.strerror}") from None


def _lstat(entry: os.DirEntry[str]) -> tuple[int, int, int] | None:
    """A regular file's (mtime_ns, size, inode), from the walk's own lstat (the same as
    a stat: it is no link), so a warm run makes one call per file, not two."""
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _link(entry: os.DirEntry[str], shown: str,
          root: Path) -> Iterable[tuple[SourceFile | None, Finding | None]]:
    """A symbolic link met in the walk. Folder links are never entered (their files are
    read through the real folder when it is inside the root); a link that leaves the root
    or loops is refused and named, whatever it points to."""
    yaml_name = _is_yaml_name(entry.name)
    if not yaml_name and (entry.name.startswith(".#") or entry.name in SKIP_DIRS):
        return
    real, why = _link_target(entry.path)
    if real is None:
        if yaml_name or why == "symbolic link loop":
            rule = "path.symlink-loop" if why == "symbolic link loop" else "path.not-regular"
            yield None, _finding(shown, 1, 1, ".", f"{why}; refusing to read it", rule)
        return  # a dangling link to something that is not YAML: not a spec
    if not yaml_name and not real.is_dir():
        return
    if not real.is_relative_to(root):
        what = "symbolic link" if yaml_name else "symbolic link to a folder"
        yield None, _finding(
            shown, 1, 1, ".",
            f"{what} points outside {display_path(root)} (to {real}); refusing to read it",
            "path.symlink-escape")
        return
    if not yaml_name:
        return  # a folder inside the root: its files are read under their own names
    if not real.is_file():
        yield None, _finding(shown, 1, 1, ".", "symbolic link does not point to a regular file",
                             "path.not-regular")
        return
    yield SourceFile(shown, str(real), via_link=True), None


def read_source(src: SourceFile) -> bytes:
    """Read a file, refusing ones over MAX_FILE_BYTES before reading them whole."""
    try:
        with open(src.absolute, "rb") as fh:
            # Asking for the size the file has, not MAX_FILE_BYTES + 1 at once: read(n)
            # allocates n bytes first (issue 13: 2 MiB per file, ~20 µs each at 10,000
            # files). One that has more than it said (it grew, a pipe, /proc) is read on
            # to the same limit.
            want = min(os.fstat(fh.fileno()).st_size, MAX_FILE_BYTES) + 1
            data = fh.read(want)
            if len(data) == want <= MAX_FILE_BYTES:
                data += fh.read(MAX_FILE_BYTES + 1 - want)
    except OSError as exc:
        raise VirtsyncError(f"{src.display}: cannot read: {exc.strerror}") from None
    return data


def load_bytes(content: bytes, display: str,
               run_budget: AliasBudget | None = None) -> LoadedFile:
    """Parse one file's bytes into Manifests plus located Findings. Pure but for
    `run_budget`, the alias expansion left to the run (spent as files are parsed)."""
    from reconciler.tree.yamlsafe import YamlProblem, parse_documents

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
        docs.extend(parse_documents(text, run_budget))
    except YamlProblem as problem:
        line, col = problem.line, problem.column
        if problem.rule in ("yaml.alias-bomb", "yaml.alias-budget", "yaml.too-deep") and (line, col) == (1, 1):
            from reconciler.tree.positions import doc_start

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
        from reconciler.tree.positions import locate

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
    from reconciler.tree.yamlsafe import AliasBudget

    sources, findings = find_yaml_files(paths)
    budget = AliasBudget.for_run()
    files = tuple(load_bytes(read_source(s), s.display, budget) for s in sources)
    return LoadResult(files, tuple(findings))
