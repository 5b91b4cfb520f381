"""Fuzzing load → validate → plan → render at the YAML text level (issue 14).

Inputs are real seed files with text edits (tests/fuzz/yaml_text.py): anchors, aliases,
merge keys, several documents, duplicate keys, tags, YAML 1.1 scalars, non-ASCII and
very long names, mutated leaves. Whatever the text, the only exception that may escape is
virtsync's own user-facing error; findings carry a line and column; a valid input is
planned against the seeds it came from, and against itself (that plan must be empty).

The suite runs a derandomized job (VIRTSYNC_FUZZ_TEXT_EXAMPLES, default 500, about 20 s).
A larger randomized run, by hand:
    VIRTSYNC_FUZZ_RANDOM=1 VIRTSYNC_FUZZ_TEXT_EXAMPLES=20000 \\
        pytest -q -s -p no:cacheprovider tests/fuzz/test_fuzz_yaml_text.py
(or scripts/fuzz.sh). The counts — inputs tried, valid, reaching the planner, per edit —
are printed at the end (-s).
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, given, settings
from yaml_text import VALID_SEEDS, yaml_texts

from reconciler.backends.libvirt_profile import PROFILE
from reconciler.check.validate import check_bytes
from reconciler.core.model import Manifest, VirtsyncError
from reconciler.planning.plan import make_plan
from reconciler.planning.plan_model import Fingerprints, Observed
from reconciler.render.json import render_json
from reconciler.render.markdown import render_markdown
from reconciler.render.text import render_text

EXAMPLES = int(os.environ.get("VIRTSYNC_FUZZ_TEXT_EXAMPLES", "500"))
RANDOM = os.environ.get("VIRTSYNC_FUZZ_RANDOM") == "1"
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
FP = Fingerprints(None, None, "sha256:x", "fuzz", "sha256:y")
LIBVIRT = PROFILE.classification
STATS: Counter[str] = Counter()


def _seed_manifests() -> dict[object, Manifest]:
    """The valid objects of every seed: the 'live' side of the plans (first one wins)."""
    live: dict[object, Manifest] = {}
    for i, text in enumerate(VALID_SEEDS):
        report = check_bytes(text.encode(), f"seed-{i}.yaml", keep_manifests=True)
        if not [f for f in report.result.findings if f.severity == "error"]:
            for m in report.manifests:
                live.setdefault(m.key, m)
    return live


LIVE = _seed_manifests()


def pipeline(text: str, edits: tuple[str, ...]) -> None:
    STATS["tried"] += 1
    try:
        report = check_bytes(text.encode(), "fuzz.yaml", keep_manifests=True)
    except VirtsyncError:
        STATS["refused (VirtsyncError)"] += 1
        return
    for f in report.result.findings:
        assert f.line >= 1 and f.column >= 1 and f.rule, f
    if [f for f in report.result.findings if f.severity == "error"]:
        return
    STATS["valid"] += 1
    desired = list(report.manifests)
    if len({m.key for m in desired}) != len(desired):
        STATS["duplicate objects (a tree-level error)"] += 1
        return  # validate refuses these across the tree; check_bytes sees one file
    live = [Observed(LIVE[m.key]) for m in desired if m.key in LIVE]
    try:
        plan = make_plan(desired, live, fingerprints=FP, profile=LIBVIRT)
    except VirtsyncError:
        STATS["planner refused (VirtsyncError)"] += 1
        return
    STATS["reached planner"] += 1
    for edit in set(edits):
        STATS[f"reached planner with {edit}"] += 1
    render_text(plan, color=False)
    render_text(plan, color=True)
    render_markdown(plan)
    render_json(plan)
    assert make_plan(desired, [Observed(m) for m in desired], fingerprints=FP,
                     profile=LIBVIRT).empty


@FUZZ
@given(yaml_texts())
def test_yaml_text_edits(case: tuple[str, tuple[str, ...]]) -> None:
    pipeline(*case)


def test_report_yaml_text_counts() -> None:
    # Runs after the fuzz test in this module (file order): how much got how far.
    print(f"\nyaml-text fuzz: {dict(sorted(STATS.items()))}")
    if STATS["tried"]:
        assert STATS["reached planner"] > STATS["tried"] // 5, STATS  # before: 57 of 300
        # Every kind of edit must reach the planner sometimes, or it tests only the loader.
        reached = {k.removeprefix("reached planner with ") for k in STATS
                   if k.startswith("reached planner with ")}
        assert {"anchor-scalar", "anchor-block", "merge-key", "documents", "tag",
                "yaml11-scalar", "name", "leaf"} <= reached, reached
