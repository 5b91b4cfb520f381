"""`virtsync render`: the tree as KubeVirt manifests, for Argo CD, Flux or kubectl.

stdout carries manifests only, written at once at the end; every message goes to
stderr. A tree that is invalid or holds nothing to render writes NOTHING to stdout and
exits non-zero: an Argo CD plugin that prints nothing and exits 0 makes Argo CD prune
every object of the application.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from reconciler.check.validate import validate_paths
from reconciler.cli.summaries import SUMMARIES
from reconciler.core.fsutil import write_atomic
from reconciler.core.model import ExitCode, Manifest, VirtsyncError
from reconciler.render.manifests import (
    KUSTOMIZATION,
    RenderedObject,
    RenderTarget,
    generated_files,
    render_kustomization,
    render_objects,
    render_stream,
)
from reconciler.tree.loader import IGNORE_FILE, IgnoreRules

NAME = "render"
HELP = SUMMARIES[NAME]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", default=".", metavar="PATH",
                   help="the tree: a directory or file of VM specs (default: .)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write one file per object and a kustomization.yaml into DIR "
                        "instead of printing one stream")
    p.add_argument("--target", choices=[t.value for t in RenderTarget],
                   default=RenderTarget.KUBEVIRT.value,
                   help="what the manifests are for (default: kubevirt)")


def run(args: argparse.Namespace) -> ExitCode:
    if args.out is not None:
        refuse_out_inside_tree(Path(args.path), args.out)
    manifests = read_tree(args.path)
    if manifests is None:
        return ExitCode.FINDINGS
    objects = render_objects(manifests, RenderTarget(args.target))
    if not objects:
        raise VirtsyncError(f"{args.path}: no objects to render (only virtsync "
                            "configuration, or no YAML at all); printing nothing and failing, "
                            "so that Argo CD does not prune the application")
    if args.out is not None:
        write_dir(args.out, objects)
        print(f"{len(objects)} objects written to {args.out}", file=sys.stderr)
        return ExitCode.OK
    # Bytes, not text: the locale's encoding must not change the output.
    sys.stdout.buffer.write(render_stream(objects).encode("utf-8"))
    sys.stdout.buffer.flush()
    print(f"{len(objects)} objects rendered from {args.path}", file=sys.stderr)
    return ExitCode.OK


def read_tree(path: str) -> Sequence[Manifest] | None:
    """The tree's objects as written in git, or None (findings on stderr) when it is
    invalid. The one place render reads the desired state. Not `load_desired`: that
    pins instancetype revisions for the libvirt backend, which KubeVirt must not see."""
    report = validate_paths([path], keep_manifests=True)
    for f in report.findings:
        print(f.as_text(), file=sys.stderr)
    if not report.valid:
        print(f"virtsync: {len(report.errors)} validation error(s) in {path}; nothing "
              "rendered", file=sys.stderr)
        return None
    return report.manifests


def refuse_out_inside_tree(tree: Path, out: Path) -> None:
    """An --out folder the tree's walk would enter makes the next render read its own
    output (every object twice, and a Kustomization): refuse before writing anything."""
    if not tree.is_dir():
        return
    root, target = tree.resolve(), out.resolve()
    if target != root and root not in target.parents:
        return
    parts = target.relative_to(root).parts
    rules = IgnoreRules.read(tree)
    if parts and any(rules.ignores("/".join(parts[:i]), True) for i in range(1, len(parts) + 1)):
        return
    rel = "/".join(parts) or "."
    raise VirtsyncError(f"--out {out} is inside the tree {tree}, so the next render would read "
                        f"its own output; add the line `{rel}/` to {tree / IGNORE_FILE} or "
                        "write somewhere else")


def write_dir(out: Path, objects: Sequence[RenderedObject]) -> None:
    """Write the files, then drop those an earlier render wrote that are gone now. A
    kustomization.yaml render did not write is the user's: refuse to touch the folder."""
    out.mkdir(parents=True, exist_ok=True)
    index = out / KUSTOMIZATION
    stale: list[str] = []
    if index.exists():
        listed = generated_files(index.read_text(encoding="utf-8"))
        if listed is None:
            raise VirtsyncError(f"{index}: not written by virtsync render; refusing to "
                                "replace it (choose an empty folder for --out)")
        stale = listed
    names = {o.file_name for o in objects}
    for o in objects:
        write_atomic(out / o.file_name, o.text.encode("utf-8"), mode=0o644)
    write_atomic(index, render_kustomization(objects).encode("utf-8"), mode=0o644)
    for name in stale:
        if name not in names:
            (out / name).unlink(missing_ok=True)
