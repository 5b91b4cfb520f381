"""The JSON plan, format version 2 (issue 9, item 6): a replace is written as Terraform
writes it, `actions: ["delete", "create"]`, and read back as one replace; the text and
markdown renders keep the word "replace" for humans; a plan file of another format is
refused with "plan again"."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from plan_helpers import FP, LIBVIRT, manifests, plan_of, vm
from plan_scenarios import SCENARIOS

from reconciler.core.model import Action, VirtsyncError
from reconciler.planning.plan import make_plan
from reconciler.planning.plan_codec import load_plan, save_plan, to_document
from reconciler.planning.plan_model import Observed
from reconciler.planning.schedule import Placement
from reconciler.render.markdown import render_markdown
from reconciler.render.text import render_text

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "plan.schema.json").read_text())


def _round_trip(plan, tmp_path: Path):  # type: ignore[no-untyped-def]
    jsonschema.validate(to_document(plan), SCHEMA, cls=jsonschema.Draft202012Validator)
    save_plan(plan, tmp_path / "plan.json")
    return load_plan(tmp_path / "plan.json")


def test_a_rename_replace_is_delete_then_create_in_json_and_replace_for_humans(
        tmp_path: Path) -> None:
    base, head = SCENARIOS["rename-identity"]
    plan = plan_of(head, base)
    (renamed,) = [c for c in plan.changes if c.key.name == "alpha-2"]
    assert renamed.actions == (Action.REPLACE,)
    (doc,) = [c for c in to_document(plan)["changes"] if c["name"] == "alpha-2"]
    assert doc["actions"] == ["delete", "create"] and doc["previous_key"].endswith("/alpha")
    assert "must be replaced (renamed from" in render_text(plan)
    assert "must be replaced (renamed from" in render_markdown(plan)
    assert "to replace" in render_text(plan)  # the summary line keeps the word
    assert _round_trip(plan, tmp_path) == plan


def test_a_node_move_that_also_starts_is_delete_create_start(tmp_path: Path) -> None:
    # Another shape: a replace by placement (no rename, no field in git) with a power action.
    desired = manifests(vm("w", run="Always"))
    live = [Observed(m, node="n1", running=False) for m in manifests(vm("w", run="Always"))]
    plan = make_plan(desired, live, fingerprints=FP, profile=LIBVIRT,
                     placement={desired[0].key: Placement("n2")})
    (change,) = plan.changes
    assert change.actions == (Action.START, Action.REPLACE)
    assert to_document(plan)["changes"][0]["actions"] == ["delete", "create", "start"]
    assert _round_trip(plan, tmp_path) == plan
    assert plan.summary.replace == 1


def test_plan_files_of_format_1_and_the_word_replace_are_refused(tmp_path: Path) -> None:
    base, head = SCENARIOS["rename-identity"]
    doc = to_document(plan_of(head, base))
    path = tmp_path / "plan.json"
    old = dict(doc, format_version="1")
    path.write_text(json.dumps(old))
    with pytest.raises(VirtsyncError, match=r"of format version 1\): plan again"):
        load_plan(path)
    path.write_text(json.dumps([]))
    with pytest.raises(VirtsyncError, match=r"no format_version\): plan again"):
        load_plan(path)
    # Format 2 never writes the word: a file that does is not one this virtsync wrote.
    for c in doc["changes"]:
        if c["actions"] == ["delete", "create"]:
            c["actions"] = ["replace"]
    path.write_text(json.dumps(doc))
    with pytest.raises(VirtsyncError, match="malformed plan file"):
        load_plan(path)
