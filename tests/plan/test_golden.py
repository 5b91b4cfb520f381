"""Golden files for each renderer on realistic before/after pairs.

Regenerate after an intended change with VIRTSYNC_UPDATE_GOLDEN=1 (the run fails on each
rewritten file; review the diff, run again) — never under CI.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from golden_files import assert_no_orphans, check_golden
from plan_helpers import plan_of
from plan_scenarios import SCENARIOS

from reconciler.planning.plan_model import Plan
from reconciler.render.json import render_json
from reconciler.render.markdown import render_markdown
from reconciler.render.text import render_text

GOLDEN = Path(__file__).parent / "golden"
SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "plan.schema.json").read_text())
RENDERERS = {
    "txt": lambda p: render_text(p, color=False),
    "md": render_markdown,
    "json": render_json,
}


def _plan(name: str) -> Plan:
    base, head = SCENARIOS[name]
    return plan_of(head, base)


@pytest.mark.parametrize("ext", sorted(RENDERERS))
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_golden(scenario: str, ext: str) -> None:
    check_golden(GOLDEN, f"{scenario}.{ext}", RENDERERS[ext](_plan(scenario)))


def test_no_orphaned_goldens() -> None:
    assert_no_orphans(GOLDEN, (f"{s}.{ext}" for s in SCENARIOS for ext in RENDERERS))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_json_matches_schema(scenario: str) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(json.loads(render_json(_plan(scenario))), SCHEMA,
                        cls=jsonschema.Draft202012Validator)


def test_text_without_colour_has_no_escapes_and_with_colour_has_them() -> None:
    plan = _plan("mixed")
    assert "\x1b[" not in render_text(plan, color=False)
    coloured = render_text(plan, color=True)
    assert "\x1b[" in coloured
    # The same words, only styled.
    import re
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == render_text(plan, color=False)
