"""Plan behaviour: actions, classes, ordering, renames, summary, plan files, freshness."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from plan_helpers import FP, LIBVIRT, manifests, plan_of, vm
from plan_scenarios import INSTANCETYPE, SCENARIOS, db

from reconciler.core.model import ObjectKey, VirtsyncError
from reconciler.planning.classify import Disruption
from reconciler.planning.plan import make_plan
from reconciler.planning.plan_codec import load_plan, save_plan, to_document
from reconciler.planning.plan_model import Fingerprints, Observed, check_fresh
from reconciler.planning.schedule import Placement
from reconciler.render.markdown import MARKER, render_markdown
from reconciler.render.text import render_text

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "plan.schema.json").read_text())


def by_name(plan, name):  # type: ignore[no-untyped-def]
    return next(c for c in plan.changes if c.key.name == name)


def test_mixed_scenario_actions_and_classes() -> None:
    plan = plan_of(SCENARIOS["mixed"][1], SCENARIOS["mixed"][0])
    web, api, new, old, dbc = (by_name(plan, n) for n in ("web", "api", "new", "old", "db"))
    assert web.actions == ("update", "restart") and web.disruption == Disruption.RESTART
    assert next(f for f in web.fields if f.forces).path.endswith("cpu.cores")
    assert api.actions == ("update", "start") and api.disruption == Disruption.LIVE
    assert new.actions == ("create",) and new.disruption == Disruption.NONE  # Halted
    assert old.actions == ("delete",) and old.disruption == Disruption.REPLACE
    assert dbc.actions == ("update",) and dbc.disruption == Disruption.LIVE  # hotplug
    assert "batch" not in {c.key.name for c in plan.changes}  # 1Gi == 1024Mi
    s = plan.summary
    assert (s.create, s.update, s.restart, s.replace, s.delete) == (1, 3, 1, 0, 1)
    assert s.unchanged == 1


def test_order_waves_kinds_names_and_deletions_last_reversed() -> None:
    base = "---\n".join([vm("a"), vm("z"), INSTANCETYPE.format(name="gone", cpus=1)])
    head = "---\n".join([vm("m").replace("app: web", "app: web\n  annotations:\n"
                                          "    virtsync.io/wave: \"-1\""),
                         vm("b"), db(), INSTANCETYPE.format(name="small", cpus=1)])
    order = [(c.key.kind[:8], c.key.name, c.actions[-1]) for c in plan_of(head, base).changes]
    assert order == [
        ("VirtualM", "m", "start"),  # wave -1 first
        ("VirtualM", "small", "create"),  # then instancetypes before VMs
        ("VirtualM", "b", "start"),
        ("VirtualM", "db", "start"),  # wave 1
        ("VirtualM", "z", "delete"),  # deletions: reverse order
        ("VirtualM", "a", "delete"),
        ("VirtualM", "gone", "delete"),
    ]


def test_halted_vm_is_not_restarted_for_restart_class_changes() -> None:
    plan = plan_of(vm("w", run="Halted", cores=4), vm("w", run="Halted", cores=2))
    (c,) = plan.changes
    assert c.actions == ("update",) and c.disruption == Disruption.NONE
    assert c.fields[0].disruption == Disruption.RESTART
    assert "applies at the next start" in c.fields[0].reason


def test_stopping_a_vm_with_other_changes_does_not_restart_it() -> None:
    (c,) = plan_of(vm("w", run="Halted", cores=4), vm("w", cores=2)).changes
    assert c.actions == ("update", "stop")


def test_observed_power_state_wins_over_the_declared_one() -> None:
    desired = manifests(vm("w", cores=4))
    live = [Observed(m, running=False) for m in manifests(vm("w", cores=2))]
    (c,) = make_plan(desired, live, fingerprints=FP, profile=LIBVIRT).changes
    assert c.actions == ("update", "start")


def test_node_move_is_replace() -> None:
    desired = manifests(vm("w"))
    live = [Observed(m, node="n1") for m in manifests(vm("w"))]
    key = desired[0].key
    (c,) = make_plan(desired, live, fingerprints=FP, profile=LIBVIRT, placement={key: Placement("n2")}).changes
    assert c.actions == ("replace",) and c.disruption == Disruption.REPLACE
    assert c.fields[0].path == "(node)"
    assert (c.placement.previous_node, c.placement.node, c.placement.moves) == ("n1", "n2", True)
    assert to_document(make_plan(desired, live, fingerprints=FP, profile=LIBVIRT, placement={
        key: Placement("n2")}))["changes"][0]["placement"] == {
        "node": "n2", "previous_node": "n1", "reason": ""}
    same = make_plan(desired, live, fingerprints=FP, profile=LIBVIRT, placement={key: Placement("n1")})
    assert same.empty


def test_placement_is_rendered_validated_and_read_back(tmp_path: Path) -> None:
    desired = manifests(vm("w", cores=4) + "---\n" + vm("new"))
    live = [Observed(m, node="n1", running=True) for m in manifests(vm("w"))]
    keys = sorted(m.key for m in desired)
    new, w = (k for k in keys if k.name == "new"), (k for k in keys if k.name == "w")
    placed = {next(w): Placement("n2"), next(new): Placement(None, "0/2 nodes are available: "
                                                             "2 node(s) were unreachable")}
    plan = make_plan(desired, live, fingerprints=FP, profile=LIBVIRT, placement=placed)
    text, md = render_text(plan), render_markdown(plan)
    for out in (text, md):
        assert "placement: n1 → n2 (moves)" in out
        assert "placement: ErrorUnschedulable: 0/2 nodes are available: 2 node(s) were " \
               "unreachable" in out
    doc = to_document(plan)
    jsonschema.validate(doc, SCHEMA, cls=jsonschema.Draft202012Validator)
    save_plan(plan, tmp_path / "p.json")
    assert load_plan(tmp_path / "p.json") == plan
    # Without nodes (git mode) nothing about placement appears.
    bare = make_plan(desired, live, fingerprints=FP, profile=LIBVIRT)
    assert "placement" not in render_text(bare) and "placement" not in to_document(
        bare)["changes"][0]


def test_rename_detected_by_pinned_identity() -> None:
    base, head = SCENARIOS["rename-identity"]
    plan = plan_of(head, base)
    renamed = by_name(plan, "alpha-2")
    assert renamed.previous_key == ObjectKey("VirtualMachine", "prod", "alpha")
    assert renamed.actions == ("replace",) and plan.summary.delete == 0
    beta = by_name(plan, "beta")
    assert beta.identity_change and beta.disruption == Disruption.RESTART


def test_rename_without_identity_is_delete_and_create() -> None:
    plan = plan_of(vm("b"), vm("a"))
    assert [c.actions[0] for c in plan.changes] == ["create", "delete"]


def test_data_loss_cases() -> None:
    base, head = SCENARIOS["data-loss"]
    c = by_name(plan_of(head, base), "db")
    assert c.disruption == Disruption.DATA_LOSS and c.actions == ("update", "restart")
    # KubeVirt deletes the DataVolumes a VM owns; libvirt keeps disks unless policy Delete.
    deleted = by_name(plan_of(vm("x"), db(), backend="kubevirt"), "db")
    assert deleted.disruption == Disruption.DATA_LOSS and deleted.actions == ("delete",)
    kept = by_name(plan_of(vm("x"), db()), "db")
    assert kept.disruption == Disruption.REPLACE and kept.actions == ("delete",)
    wiped = db().replace("  annotations:\n", "  annotations:\n"
                         "    virtsync.io/disk-policy: Delete\n", 1)
    assert by_name(plan_of(vm("x"), wiped), "db").disruption == Disruption.DATA_LOSS


def test_empty_plan() -> None:
    base, head = SCENARIOS["no-changes"]
    plan = plan_of(head, base)
    assert plan.empty and plan.summary.unchanged == 2
    assert "No changes." in render_text(plan)


def test_plan_file_round_trip_and_freshness(tmp_path: Path) -> None:
    plan = plan_of(SCENARIOS["mixed"][1], SCENARIOS["mixed"][0])
    path = tmp_path / "plan.json"
    save_plan(plan, path)
    loaded = load_plan(path)
    assert loaded == plan
    check_fresh(loaded, FP)
    moved = Fingerprints(FP.desired_commit, FP.desired_tree, "sha256:" + "9" * 64,
                         FP.live_source, FP.live_hash)
    with pytest.raises(VirtsyncError, match="stale plan: the desired tree changed"):
        check_fresh(loaded, moved)
    live_moved = Fingerprints(FP.desired_commit, FP.desired_tree, FP.desired_hash,
                              FP.live_source, "sha256:" + "8" * 64)
    with pytest.raises(VirtsyncError, match="stale plan: live state changed"):
        check_fresh(loaded, live_moved)


def test_plan_file_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text('{"format_version": "0"}')
    with pytest.raises(VirtsyncError, match="format version"):
        load_plan(path)
    path.write_text('{"format_version": "2", "changes": [{}]}')
    with pytest.raises(VirtsyncError, match="malformed plan file"):
        load_plan(path)


def test_markdown_is_capped_and_keeps_blocks_whole() -> None:
    base = "---\n".join(vm(f"vm-{i:04d}", cores=2) for i in range(400))
    head = "---\n".join(vm(f"vm-{i:04d}", cores=4).replace("hostname:", "hostname: x")
                        for i in range(400))
    plan = plan_of(head, base)
    assert len(plan.changes) == 400
    md = render_markdown(plan)
    assert len(md) <= 65_000
    assert md.startswith(MARKER)
    assert md.count("<details>") == md.count("</details>") > 10
    assert md.count("```") % 2 == 0
    assert "more objects not shown" in md
    assert "Restarts: 400 objects" in md
    small = render_markdown(plan, max_chars=5_000)
    assert len(small) <= 5_000 and small.count("```") % 2 == 0


def test_markdown_fence_survives_backticks_in_values() -> None:
    head = vm("w").replace("app: web", "app: web\n  annotations:\n    note: '```oops'")
    md = render_markdown(plan_of(head, vm("w")))
    assert "````diff" in md
