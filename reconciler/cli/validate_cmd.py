"""`virtsync validate`: the first thing a pull request runs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from reconciler.check.validate import ValidationReport, validate_paths
from reconciler.cli.summaries import SUMMARIES
from reconciler.core.model import ExitCode, Finding

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


def run(args: argparse.Namespace) -> ExitCode:
    report = validate_paths(args.paths, ignore_unknown=args.ignore_unknown,
                            use_cache=not args.no_cache)
    fmt = args.format
    if fmt == "auto":
        fmt = "github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text"
    out = {"text": render_text, "json": render_json, "github": render_github}[fmt](report)
    if out:
        sys.stdout.write(out)
    return ExitCode.OK if report.valid else ExitCode.FINDINGS


def render_text(report: ValidationReport) -> str:
    lines = [f.as_text() for f in report.findings]
    n_err = len(report.errors)
    summary = (f"{len(report.objects)} objects in {len(report.files)} files: "
               f"{'valid' if not n_err else f'{n_err} error' + ('s' if n_err != 1 else '')}")
    print(summary, file=sys.stderr)
    return "".join(line + "\n" for line in lines)


def render_json(report: ValidationReport) -> str:
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


def render_github(report: ValidationReport) -> str:
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
