"""`virtsync validate`: the first thing a pull request runs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence, Sized
from typing import TYPE_CHECKING, Protocol

from reconciler.cli.summaries import SUMMARIES
from reconciler.core.errors import ExitCode

if TYPE_CHECKING:
    from reconciler.core.model import Finding
    from reconciler.tree.settled import PlainWalk

# The checks are imported only when the cache cannot vouch for the tree: an unchanged
# tree is answered from its stored row (tree/settled.py, issue 13).

NAME = "validate"
HELP = SUMMARIES[NAME]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", default=["."], metavar="PATH",
                   help="files or directories of YAML specs (default: .)")
    p.add_argument("--format", choices=["auto", "text", "json", "github"], default="auto",
                   help="output format; auto = github under GITHUB_ACTIONS=true, else text")
    p.add_argument("--ignore-unknown", action="store_true",
                   help="skip objects of kinds virtsync does not handle instead of failing")
    p.add_argument("--no-cache", action="store_true",
                   help="do not read or write the content-hash cache")


class Report(Protocol):
    """What the renderers read: a ValidationReport, or a _Settled tree's counts."""

    @property
    def files(self) -> Sized: ...
    @property
    def objects(self) -> Sized: ...
    @property
    def findings(self) -> Sequence[Finding]: ...
    @property
    def errors(self) -> Sequence[Finding]: ...
    @property
    def valid(self) -> bool: ...


class _Counted:
    """A tree answered from the cache: an unchanged one (a run found it valid without a
    single finding), or one with a few files edited (check/incremental.py `edited`,
    findings as the full path gives them). Counts and findings are all there is to
    report."""

    def __init__(self, files: int, objects: int, findings: tuple[Finding, ...] = ()) -> None:
        self.files = range(files)
        self.objects = range(objects)
        self.findings = findings
        self.errors = tuple(f for f in findings if f.severity == "error")
        self.valid = not self.errors


def _settled(args: argparse.Namespace, walked: PlainWalk) -> _Counted | None:
    from reconciler.check import SCHEMA_DIR
    from reconciler.core.statedir import state_dir
    from reconciler.tree.settled import DB_NAME, settled_tree

    found = settled_tree(walked, args.paths, args.ignore_unknown, SCHEMA_DIR,
                         state_dir() / "cache" / DB_NAME)
    if found is None:
        return None
    files, objects, findings = found
    # Findings (sorted, located, with the empty-tree one added) come from the full path.
    return _Counted(files, objects) if objects and not findings else None


def _edited(args: argparse.Namespace, walked: PlainWalk) -> _Counted | None:
    from reconciler.check.incremental import edited

    found = edited(walked, args.paths, args.ignore_unknown)
    return None if found is None else _Counted(*found)


def run(args: argparse.Namespace) -> ExitCode:
    from reconciler.tree.settled import plain_walk

    walked = None if args.no_cache else plain_walk(args.paths)
    report: Report | None = None
    if walked is not None:
        report = _settled(args, walked) or _edited(args, walked)
    if report is None:
        from reconciler.check.validate import validate_paths

        report = validate_paths(args.paths, ignore_unknown=args.ignore_unknown,
                                use_cache=not args.no_cache, walked=walked)
    fmt = args.format
    if fmt == "auto":
        fmt = "github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text"
    out = {"text": render_text, "json": render_json, "github": render_github}[fmt](report)
    if out:
        sys.stdout.write(out)
    return ExitCode.OK if report.valid else ExitCode.FINDINGS


def render_text(report: Report) -> str:
    lines = [f.as_text() for f in report.findings]
    n_err = len(report.errors)
    summary = (f"{len(report.objects)} objects in {len(report.files)} files: "
               f"{'valid' if not n_err else f'{n_err} error' + ('s' if n_err != 1 else '')}")
    print(summary, file=sys.stderr)
    return "".join(line + "\n" for line in lines)


def render_json(report: Report) -> str:
    doc = {
        "valid": report.valid,
        "objects": len(report.objects),
        "files": len(report.files),
        "errors": [_finding_json(f) for f in report.findings if f.severity == "error"],
        "warnings": [_finding_json(f) for f in report.findings if f.severity != "error"],
    }
    return json.dumps(doc, indent=2) + "\n"


def _finding_json(f: Finding) -> dict[str, object]:
    return {"file": f.file, "line": f.line, "column": f.column, "path": f.path,
            "message": f.message, "rule": f.rule}


def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def render_github(report: Report) -> str:
    """GitHub Actions workflow commands: one annotation per finding."""
    out: list[str] = []
    for f in report.findings:
        level = "error" if f.severity == "error" else "warning"
        props: Sequence[str] = [f"file={_escape_property(f.file)}"]
        if f.line > 0:
            props = [*props, f"line={f.line}", f"col={f.column}"]
        title = _escape_property(f"virtsync {f.rule}")
        out.append(f"::{level} {','.join(props)},title={title}::"
                   f"{_escape_data(f'{f.path}: {f.message}')}\n")
    return "".join(out)
